/** Long-running child processes (kf, kubectl, kftui) whose output lines can be awaited, and one-shot commands. */

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a command to completion; the environment is the bench's own plus `env`. */
export async function run(
  command: string,
  args: string[],
  options: { env?: Record<string, string>; cwd?: string; stdin?: string } = {},
): Promise<RunResult> {
  const started = performance.now();
  const child = new Deno.Command(command, {
    args,
    env: options.env,
    cwd: options.cwd,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const out = await child.output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
    ms: performance.now() - started,
  };
}

/** Output lines kept per process; a chatty child must not grow the bench's memory without bound. */
const MAX_LINES = 5_000;

/** Every child still running, so an interrupted bench can end them. */
const live = new Set<Proc>();

/** SIGKILLs every child the bench started that is still running. */
export function killAll(): void {
  for (const proc of live) proc.signal("SIGKILL");
}

/** A child process whose stdout and stderr lines are collected (and always drained). */
export class Proc {
  readonly child: Deno.ChildProcess;
  readonly label: string;
  readonly startedAt = performance.now();
  readonly lines: { at: number; text: string }[] = [];
  readonly exited: Promise<Deno.CommandStatus>;
  #exitStatus?: Deno.CommandStatus;
  readonly #waiters = new Set<() => void>();
  #dropped = 0;

  constructor(label: string, command: string, args: string[], env?: Record<string, string>) {
    this.label = label;
    this.child = new Deno.Command(command, {
      args,
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#collect(this.child.stdout);
    this.#collect(this.child.stderr);
    live.add(this);
    this.exited = this.child.status.then((status) => {
      live.delete(this);
      this.#exitStatus = status;
      this.#wake();
      return status;
    });
  }

  get pid(): number {
    return this.child.pid;
  }

  get alive(): boolean {
    return this.#exitStatus === undefined;
  }

  get output(): string {
    const head = this.#dropped ? `[${this.#dropped} earlier lines dropped]\n` : "";
    return head + this.lines.map((l) => l.text).join("\n");
  }

  #wake(): void {
    for (const wake of [...this.#waiters]) wake();
  }

  async #collect(stream: ReadableStream<Uint8Array>): Promise<void> {
    let pending = "";
    try {
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
        pending += chunk;
        const parts = pending.split("\n");
        pending = parts.pop()!;
        const at = performance.now();
        for (const text of parts) this.lines.push({ at, text });
        if (this.lines.length > MAX_LINES) {
          const cut = this.lines.length - MAX_LINES;
          this.lines.splice(0, cut);
          this.#dropped += cut;
        }
        this.#wake();
      }
    } catch {
      // the process was killed mid-line
    }
    if (pending) this.lines.push({ at: performance.now(), text: pending });
    this.#wake();
  }

  /**
   * Resolves once `done(lines)` returns a value other than undefined, checked at every new line; rejects
   * after timeoutMs or when the process exits first, with its output.
   */
  until<T>(done: (lines: { at: number; text: string }[]) => T | undefined, timeoutMs = 30_000): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const value = done(this.lines);
        if (value !== undefined) {
          cleanup();
          resolve(value);
        } else if (!this.alive) {
          cleanup();
          reject(
            new Error(
              `${this.label} exited (${this.#exitStatus?.code}) before it was ready:\n${this.tail()}`,
            ),
          );
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${this.label}: timed out after ${timeoutMs} ms; output:\n${this.tail()}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
      check();
    });
  }

  /** The first line matching pattern (waits for it). */
  waitFor(pattern: RegExp, timeoutMs = 30_000): Promise<{ at: number; match: RegExpMatchArray }> {
    return this.until((lines) => {
      for (const line of lines) {
        const match = line.text.match(pattern);
        if (match) return { at: line.at, match };
      }
      return undefined;
    }, timeoutMs);
  }

  tail(n = 30): string {
    return this.lines.slice(-n).map((l) => l.text).join("\n");
  }

  signal(signal: Deno.Signal): void {
    try {
      this.child.kill(signal);
    } catch {
      // already gone
    }
  }

  /** Sends `signal` (SIGTERM by default), then SIGKILL after graceMs; resolves with the exit status. */
  async stop(graceMs = 5_000, signal: Deno.Signal = "SIGTERM"): Promise<Deno.CommandStatus> {
    if (this.alive) this.signal(signal);
    const timer = setTimeout(() => this.signal("SIGKILL"), graceMs);
    const status = await this.exited;
    clearTimeout(timer);
    return status;
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls fn until it returns a truthy value. */
export async function until<T>(fn: () => Promise<T> | T, timeoutMs = 30_000, what = "condition"): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}
