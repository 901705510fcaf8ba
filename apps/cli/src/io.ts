/** Where a command writes: stdout/stderr in the terminal, buffers in tests. */
export interface CliIO {
  /** Writes results (stdout). */
  out(text: string): void;
  /** Writes progress, timings and errors (stderr). */
  err(text: string): void;
  /** True when stderr is an interactive terminal (progress bars). */
  isTTY: boolean;
}

/** The process's own streams. */
export const processIO: CliIO = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  isTTY: !!process.stderr.isTTY,
};
