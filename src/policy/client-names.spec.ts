import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { AuthModeName, ClientConfig } from '../config/gateway-config';
import { parseServicesFile } from '../config/load-config';
import { Admission } from './admission';
import { ClientNames, type NamingMode } from './client-names';
import { clientCredentialProblems } from '../config/client-policy-schema';

const KEY = `sha256:${'a'.repeat(64)}`;

/** [mode of the credential, name it proved, the client id expected]. */
type Row = [NamingMode, string, string];

function check(modes: AuthModeName[], clients: Record<string, ClientConfig>, rows: Row[]): void {
  const names = new ClientNames(modes, clients);
  for (const [via, name, expected] of rows) {
    assert.equal(names.clientOf(via, name), expected, `${modes.join(',')}: ${via} "${name}"`);
  }
}

describe('ClientNames: which client a proven name is', () => {
  test('one mode and no credential lists: every name as it is (single-mode deployments keep their ids)', () => {
    check(['jwt'], { ops: { tools: { allow: ['echo'] } } }, [
      ['jwt', 'ops', 'ops'],
      ['jwt', 'mtls:ops', 'mtls:ops'],
      ['jwt', 'anonymous', 'anonymous'],
    ]);
    check(['mtls'], {}, [['mtls', 'svc-7.example', 'svc-7.example']]);
    // API keys of a mode that is off claim nothing.
    check(['oauth'], { ops: { apiKeys: [KEY] } }, [['oauth', 'ops', 'ops']]);
  });

  test('API keys and tokens: a subject is its bare name unless an API-key client has that name', () => {
    check(['api_key', 'jwt'], { ops: { apiKeys: [KEY] }, eve: { tools: { allow: ['echo'] } } }, [
      ['jwt', 'ops', 'jwt:ops'],
      ['jwt', 'eve', 'eve'],
      ['jwt', 'carol', 'carol'],
      ['jwt', 'anonymous', 'jwt:anonymous'],
      // A name shaped like another mode's id cannot pass for it.
      ['jwt', 'mtls:carol', 'jwt:mtls:carol'],
    ]);
    check(['api_key', 'oauth'], { ops: { apiKeys: [KEY] } }, [['oauth', 'ops', 'oauth:ops']]);
  });

  test('tokens and certificates: certificate names are kept apart (mtls:<name>)', () => {
    check(['api_key', 'jwt', 'mtls'], { ops: { apiKeys: [KEY] } }, [
      ['jwt', 'ops', 'jwt:ops'],
      ['mtls', 'ops', 'mtls:ops'],
      ['jwt', 'eve', 'eve'],
      ['mtls', 'eve', 'mtls:eve'],
    ]);
    check(['api_key', 'mtls'], { ops: { apiKeys: [KEY] } }, [
      ['mtls', 'ops', 'mtls:ops'],
      ['mtls', 'eve', 'eve'],
    ]);
  });

  test('an entry that lists subjects or certificate names is exactly those (and joins them)', () => {
    const clients = {
      ops: { apiKeys: [KEY], tokenSubjects: ['ops', 'ops-bot'], certificateNames: ['ops.example'] },
    };
    check(['api_key', 'jwt', 'mtls'], clients, [
      ['jwt', 'ops', 'ops'],
      ['jwt', 'ops-bot', 'ops'],
      ['mtls', 'ops.example', 'ops'],
      ['mtls', 'ops', 'mtls:ops'],
    ]);
    // With one mode, a list still claims its entry's name.
    check(['mtls'], { ops: { certificateNames: ['ops.example'] } }, [
      ['mtls', 'ops.example', 'ops'],
      ['mtls', 'ops', 'mtls:ops'],
      ['mtls', 'eve', 'eve'],
    ]);
  });

  test('claimed ids (none beside other modes) never become a client with credentials', () => {
    check(['api_key', 'none'], { ops: { apiKeys: [KEY] } }, [
      ['none', 'ops', 'none:ops'],
      ['none', 'eve', 'eve'],
      ['none', 'anonymous', 'anonymous'],
    ]);
    check(['jwt', 'none'], {}, [
      ['none', 'eve', 'none:eve'],
      ['jwt', 'eve', 'eve'],
    ]);
  });
});

describe('clientCredentialProblems', () => {
  test('lists every problem: a name listed twice, credentials on * or a namespaced id, a bad name', () => {
    const problems = clientCredentialProblems({
      ops: { tokenSubjects: ['ops'], certificateNames: ['ops'] },
      ci: { tokenSubjects: ['ops'], certificateNames: ['ci'] },
      '*': { apiKeys: [KEY] },
      'mtls:eve': { certificateNames: ['eve'] },
      bad: { certificateNames: ['two words'] },
      'jwt:ok': {},
    });
    assert.equal(problems.length, 4, problems.join('\n'));
    assert.match(problems[0], /clients\.ci\.tokenSubjects: "ops" is already listed by clients\.ops/);
    assert.match(problems[1], /clients\.\*: "\*" is the policy of clients without an entry/);
    assert.match(
      problems[2],
      /clients\.mtls:eve: "mtls:eve" is the id the gateway gives a name of the mtls mode/,
    );
    assert.match(problems[3], /clients\.bad\.certificateNames: "two words" is not a valid client name/);
  });

  test('gateway.yaml is refused with them (at start-up and on a live edit)', () => {
    const parsed = parseServicesFile(
      'gateway.yaml',
      'clients:\n  ops: { tokenSubjects: [ops] }\n  ci: { tokenSubjects: [ops] }\n',
    );
    assert.equal(parsed.ok, false);
    if (!parsed.ok) assert.match(parsed.problems.join('\n'), /"ops" is already listed by clients\.ops/);
    const good = parseServicesFile(
      'gateway.yaml',
      "clients:\n  ops: { tokenSubjects: [ops], certificateNames: [ops] }\n  'mtls:eve': { rateLimit: { perSecond: 5 } }\n",
    );
    assert.equal(good.ok, true, good.ok ? '' : good.problems.join('\n'));
  });
});

describe('Admission with credential lists', () => {
  test('an edit that takes a subject from a client closes what that subject opened (4403)', () => {
    const admission = new Admission(
      {
        host: '127.0.0.1',
        tls: undefined,
        trustedProxies: [],
        s5: { timeoutMs: 50, defaultVerdict: 'allow' },
        clients: { ops: { apiKeys: [KEY], tokenSubjects: ['ops'] } },
        auth: {
          modes: ['api_key', 'jwt'],
          jwtSecret: 'x'.repeat(40),
          jwksUrl: undefined,
          jwksCooldownMs: 0,
          issuers: undefined,
          audiences: undefined,
          clockToleranceS: 0,
          clientIdClaim: 'sub',
          requiredScopes: [],
          authorizationServers: [],
          scopesSupported: undefined,
          publicUrl: undefined,
          mtlsClientId: 'cn',
          wsQueryToken: false,
        },
      },
      { authRefused: () => {}, authAdmitted: () => {} },
      { log: () => {}, warn: () => {} },
      undefined,
    );
    const closed: Array<[number, string]> = [];
    const channel = { close: (code: number, reason: string) => void closed.push([code, reason]) };
    admission.watch(channel, { clientId: 'ops', via: 'jwt', name: 'ops', scopes: [] });
    admission.setClients({ ops: { apiKeys: [KEY], tokenSubjects: ['ops'], tools: { allow: ['echo'] } } });
    assert.deepEqual(closed, [], 'still listed: still ops');
    admission.setClients({ ops: { apiKeys: [KEY] } });
    assert.deepEqual(closed, [[4403, 'The credential no longer names client "ops"']]);
  });
});
