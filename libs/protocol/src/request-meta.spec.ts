import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  checkRequestMeta,
  META_CLIENT_CAPABILITIES as CAPS,
  META_CLIENT_INFO as INFO,
  META_LOG_LEVEL as LEVEL,
  META_PROTOCOL_VERSION as VERSION,
} from './request-meta';

const base = { [VERSION]: '2026-07-28', [CAPS]: {} };

describe('checkRequestMeta (2026-07-28 request _meta)', () => {
  test('accepts the required members, well-typed optional ones and members it does not know', () => {
    for (const meta of [
      base,
      { ...base, [INFO]: { name: 'c', version: '1' } },
      {
        ...base,
        [INFO]: { name: 'c', version: '1', title: 't', description: 'd', websiteUrl: 'u', icons: [] },
        [LEVEL]: 'warning',
        'com.example/x': [1, 2],
      },
      { ...base, [CAPS]: { experimental: {}, extensions: { 'a/b': {} }, roots: {}, other: null } },
      { ...base, [CAPS]: { sampling: { context: {}, tools: {} }, elicitation: { form: {}, url: {} } } },
      {
        ...base,
        [INFO]: {
          name: 'c',
          version: '1',
          icons: [{ src: 's', mimeType: 'image/png', sizes: ['48x48'], theme: 'light' }],
        },
      },
    ]) {
      assert.equal(checkRequestMeta(meta), undefined, JSON.stringify(meta));
    }
  });

  // [what, _meta, the member the reason must name]
  const bad: Array<[string, Record<string, unknown> | undefined, string]> = [
    ['no _meta', undefined, VERSION],
    ['no protocol version', { [CAPS]: {} }, VERSION],
    ['a numeric protocol version', { ...base, [VERSION]: 1 }, VERSION],
    ['no capabilities', { [VERSION]: '2026-07-28' }, CAPS],
    ['capabilities null', { ...base, [CAPS]: null }, CAPS],
    ['capabilities an array', { ...base, [CAPS]: [] }, CAPS],
    ['experimental a string', { ...base, [CAPS]: { experimental: 'x' } }, `${CAPS}"].experimental`],
    ['extensions of numbers', { ...base, [CAPS]: { extensions: { 'a/b': 1 } } }, `${CAPS}"].extensions`],
    ['roots true', { ...base, [CAPS]: { roots: true } }, `${CAPS}"].roots`],
    ['sampling.tools a string', { ...base, [CAPS]: { sampling: { tools: 'y' } } }, `${CAPS}"].sampling`],
    ['elicitation an array', { ...base, [CAPS]: { elicitation: [] } }, `${CAPS}"].elicitation`],
    ['clientInfo a string', { ...base, [INFO]: 'me' }, INFO],
    ['clientInfo null', { ...base, [INFO]: null }, INFO],
    ['clientInfo without a name', { ...base, [INFO]: { version: '1' } }, INFO],
    [
      'clientInfo.websiteUrl a number',
      { ...base, [INFO]: { name: 'c', version: '1', websiteUrl: 1 } },
      `${INFO}"].websiteUrl`,
    ],
    ['an icon without src', { ...base, [INFO]: { name: 'c', version: '1', icons: [{}] } }, `${INFO}"].icons`],
    [
      'icon sizes of numbers',
      { ...base, [INFO]: { name: 'c', version: '1', icons: [{ src: 's', sizes: [48] }] } },
      `${INFO}"].icons`,
    ],
    [
      'icon theme blue',
      { ...base, [INFO]: { name: 'c', version: '1', icons: [{ src: 's', theme: 'blue' }] } },
      `${INFO}"].icons`,
    ],
    ['logLevel a number', { ...base, [LEVEL]: 3 }, LEVEL],
    ['logLevel not a level', { ...base, [LEVEL]: 'verbose' }, LEVEL],
  ];
  for (const [what, meta, member] of bad) {
    test(`refuses ${what}, naming ${member}`, () => {
      const reason = checkRequestMeta(meta);
      assert.ok(reason?.includes(member), `${reason}`);
    });
  }
});
