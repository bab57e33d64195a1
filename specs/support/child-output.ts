/**
 * Waiting on what a child process prints: specs that start real `cloudless` processes wait for
 * a line rather than sleeping, always with a deadline.
 */
import type { ChildProcess } from 'node:child_process';

/** Resolves with everything printed so far once stdout contains `text`; rejects after `timeoutMs`. */
export function waitForOutput(child: ChildProcess, text: string, timeoutMs = 15_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(
      () => reject(new Error(`no '${text}' within ${timeoutMs} ms; got: ${seen}`)),
      timeoutMs,
    );
    child.stdout?.on('data', (chunk: Buffer) => {
      seen += chunk.toString();
      if (seen.includes(text)) {
        clearTimeout(timer);
        resolve(seen);
      }
    });
  });
}
