/**
 * The child side of ProfileRequest: a CPU profile of exactly the measured window, taken with
 * the in-process inspector. (--cpu-prof would cover start-up too and is only written on a
 * clean exit, which a gateway stopped by signal does not make.)
 */
import { writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector';
import type { ProfileReply, ProfileRequest } from './ipc';

function post<T = unknown>(session: Session, method: string): Promise<T> {
  return new Promise((resolve, reject) =>
    session.post(method, (err, result) => (err ? reject(err) : resolve(result as T))),
  );
}

export function answerProfileRequests(): void {
  let session: Session | undefined;
  const reply = (msg: ProfileReply) => process.send?.(msg);
  process.on('message', (msg: ProfileRequest) => {
    if (msg?.type !== 'profile') return;
    void (async () => {
      try {
        if (msg.phase === 'start') {
          session ??= new Session();
          session.connect();
          await post(session, 'Profiler.enable');
          await post(session, 'Profiler.start');
        } else if (session) {
          const { profile } = await post<{ profile: object }>(session, 'Profiler.stop');
          session.disconnect();
          session = undefined;
          if (msg.file) await writeFile(msg.file, JSON.stringify(profile));
        }
        reply({ type: 'profile', phase: msg.phase });
      } catch (err) {
        reply({ type: 'profile', phase: msg.phase, error: (err as Error).message });
      }
    })();
  });
}
