#!/usr/bin/env node
/**
 * The `statespace` binary. It never calls `process.exit` right after a command: stdout to a pipe is
 * written asynchronously once the pipe's 64 KiB buffer is full, and exiting then cuts the output.
 * Instead the Dawn device is destroyed and Node ends by itself once both streams are written.
 */
import { releaseRuntime } from './commands.js';
import { processIO } from './io.js';
import { main } from './main.js';

/** Resolves once everything written to `stream` so far has reached the OS. */
function flushed(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => {
    if (stream.destroyed || !stream.writable) resolve();
    else stream.write('', () => resolve());
  });
}

// A reader that stops early (`statespace ... | head`) closes the pipe: end quietly, as Unix tools do.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});

const code = await main(process.argv.slice(2), processIO);
await releaseRuntime();
process.exitCode = code;
await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
// Should anything else still hold the event loop (a driver thread, a handle we did not open), end
// anyway: the output is written, so nothing is lost. Unref'd, so it never delays a normal exit.
setTimeout(() => {
  if (process.env.STATESPACE_DEBUG) process.stderr.write('statespace: the event loop was still busy 2 s after the output was written; exiting\n');
  process.exit(code);
}, 2_000).unref();
