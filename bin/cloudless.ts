#!/usr/bin/env node
/**
 * Entry point of the `cloudless` command: wires the CLI to this process's streams and signals.
 */
import { main } from './cli.ts';

// Signal listeners do not keep Node's event loop alive; a running node must, until told to stop.
const keepAlive = setInterval(() => {}, 2 ** 30);
const stopRequested = new Promise<string>((resolve) => {
  let requested = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (!requested) {
      requested = true;
      resolve(signal);
      return;
    }
    // A second signal while stopping: the operator does not want to wait for the drain.
    process.stderr.write(`cloudless: ${signal} again, exiting without a clean stop\n`);
    process.exit(1);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
});

const code = await main(process.argv.slice(2), {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  env: process.env,
  stopRequested,
});
clearInterval(keepAlive);
process.exit(code);
