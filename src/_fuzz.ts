/**
 * A small fuzzing kit for kf's parsers and decoders: a seeded PRNG, structure-aware mutators for text and
 * bytes, and a runner that executes a target in a Worker so that a hang is caught by a deadline instead
 * of blocking the test run forever.
 *
 * What a target promises ("typed errors only"): for any input it returns, or throws an instance of one of
 * the error classes it declares (every one a KfError subclass that carries a message for a user). A
 * TypeError, RangeError or plain Error escaping is a bug — it would reach the user as "set KF_DEBUG=1 for
 * details" — and so is a property check that fails, or an input that takes longer than the deadline.
 *
 * Every iteration has its own PRNG derived from (seed, iteration), so one failing input is reproduced
 * alone: the failure message names the seed and iteration, and `KF_FUZZ_SEED`/`KF_FUZZ_ONLY` replay it.
 */

import { concatBytes } from "./bytes.ts";

/** One fuzzed function: where its inputs come from and what it must never do. */
export interface FuzzTarget<T = unknown> {
  /** A new input for one iteration; `rng` is that iteration's own generator. */
  input(rng: Prng, iteration: number): T;
  /** Runs the code under test; throws (anything) to report a violated property. */
  run(input: T): void | Promise<void>;
  /** The error classes `run` may throw for bad input; anything else fails the fuzz run. */
  typed: ReadonlyArray<abstract new (...args: never[]) => Error>;
  /** A short printable form of an input, for failure messages. */
  show(input: T): string;
}

/** Stable 32-bit hash (FNV-1a), to derive per-iteration seeds and stable seeds from names. */
export function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** sfc32: fast, small state, good statistical quality; more than enough to drive mutations. */
export class Prng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  constructor(seed: number) {
    this.#a = 0x9e3779b9;
    this.#b = 0x243f6a88;
    this.#c = 0xb7e15162;
    this.#d = seed >>> 0;
    // the first outputs of sfc32 still show the seed's structure; mix it out
    for (let i = 0; i < 12; i++) this.next();
  }

  /** The generator for one iteration of a run: depends only on (seed, iteration). */
  static forIteration(seed: number, iteration: number): Prng {
    return new Prng(hash32(`${seed}:${iteration}`));
  }

  /** A uniform 32-bit unsigned integer. */
  next(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) | 0;
    return t >>> 0;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return n <= 0 ? 0 : Math.floor((this.next() / 0x1_0000_0000) * n);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.next() / 0x1_0000_0000 < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.next() & 0xff;
    return out;
  }
}

// -------------------------------------------------------------------------------------------- bytes

/** Values that sit on boundaries decoders get wrong: signs, widths, lengths. */
const INTERESTING_32 = [
  0,
  1,
  2,
  3,
  4,
  7,
  8,
  0x7f,
  0x80,
  0xff,
  0x100,
  0xffff,
  0x10000,
  0xffffff,
  0x7fffffff,
  0x80000000,
  0xffffffff,
];
const INTERESTING_8 = [0, 1, 0x7f, 0x80, 0xfe, 0xff];

/**
 * One to four random edits of `input` (never modified in place): bit flips, boundary values written as
 * 8/16/24/32-bit big-endian numbers (length and count fields), inserted, deleted, duplicated or random
 * ranges, truncation, and splicing with another valid input.
 */
export function mutateBytes(rng: Prng, input: Uint8Array, others: readonly Uint8Array[] = []): Uint8Array {
  let bytes: Uint8Array = input.slice();
  const edits = 1 + rng.int(4);
  for (let e = 0; e < edits; e++) {
    const at = rng.int(bytes.length + 1);
    switch (rng.int(9)) {
      case 0: // flip one bit
        if (bytes.length > 0) bytes[rng.int(bytes.length)] ^= 1 << rng.int(8);
        break;
      case 1: // a boundary byte
        if (bytes.length > 0) bytes[rng.int(bytes.length)] = rng.pick(INTERESTING_8);
        break;
      case 2: { // a boundary number over 1-4 bytes, where length fields live
        const width = 1 + rng.int(4);
        if (bytes.length < width) break;
        const where = rng.int(bytes.length - width + 1);
        let value = rng.pick(INTERESTING_32) + (rng.chance(0.3) ? rng.int(3) - 1 : 0);
        for (let i = width - 1; i >= 0; i--, value = Math.floor(value / 256)) bytes[where + i] = value & 0xff;
        break;
      }
      case 3: // insert random bytes
        bytes = concatBytes([bytes.subarray(0, at), rng.bytes(1 + rng.int(16)), bytes.subarray(at)]);
        break;
      case 4: { // delete a range
        const end = Math.min(bytes.length, at + 1 + rng.int(16));
        bytes = concatBytes([bytes.subarray(0, at), bytes.subarray(end)]);
        break;
      }
      case 5: { // duplicate a range
        const start = rng.int(bytes.length + 1);
        const piece = bytes.slice(start, start + 1 + rng.int(32));
        bytes = concatBytes([bytes.subarray(0, at), piece, bytes.subarray(at)]);
        break;
      }
      case 6: // truncate
        bytes = bytes.slice(0, at);
        break;
      case 7: { // splice in part of another valid input
        if (others.length === 0) break;
        const other = rng.pick(others);
        const start = rng.int(other.length + 1);
        bytes = concatBytes([
          bytes.subarray(0, at),
          other.subarray(start, start + rng.int(64)),
          bytes.subarray(at),
        ]);
        break;
      }
      default: // overwrite a range with random bytes
        for (let i = at; i < Math.min(bytes.length, at + 1 + rng.int(8)); i++) bytes[i] = rng.next() & 0xff;
    }
  }
  return bytes;
}

// --------------------------------------------------------------------------------------------- text

/** Characters with meaning to YAML, shells and the parsers, plus some that are just awkward. */
const SPECIAL = [
  ":",
  "-",
  "[",
  "]",
  "{",
  "}",
  ",",
  "&",
  "*",
  "!",
  "|",
  ">",
  "'",
  '"',
  "#",
  "%",
  "@",
  "`",
  "?",
  "=",
  "/",
  "\t",
  "\n",
  "\r\n",
  " ",
  "  ",
  "\\",
  "\0",
  "\uFFFD",
  "\uFEFF",
  "\u2028",
  "é",
  "😀",
  "~",
  "<<",
  "---",
  "...",
];
const NUMBERS = [
  "0",
  "-1",
  "1",
  "65535",
  "65536",
  "4294967296",
  "1e309",
  "0x50",
  "080",
  "1.5",
  ".inf",
  "NaN",
  "9".repeat(40),
];

/**
 * One to three edits of a text, aware of lines and tokens: insert a dictionary word or special
 * character, replace a number with a boundary one, delete, duplicate or swap lines, change indentation,
 * cut the text, or insert random characters.
 */
export function mutateText(rng: Prng, input: string, dictionary: readonly string[] = []): string {
  let text = input;
  const edits = 1 + rng.int(3);
  for (let e = 0; e < edits; e++) {
    const at = rng.int(text.length + 1);
    const lines = text.split("\n");
    const line = rng.int(lines.length);
    switch (rng.int(10)) {
      case 0:
        if (dictionary.length > 0) text = text.slice(0, at) + rng.pick(dictionary) + text.slice(at);
        break;
      case 1:
        text = text.slice(0, at) + rng.pick(SPECIAL) + text.slice(at);
        break;
      case 2: {
        const numbers = [...text.matchAll(/\d+/g)];
        if (numbers.length === 0) break;
        const match = rng.pick(numbers);
        text = text.slice(0, match.index) + rng.pick(NUMBERS) + text.slice(match.index! + match[0].length);
        break;
      }
      case 3:
        lines.splice(line, 1);
        text = lines.join("\n");
        break;
      case 4:
        lines.splice(line, 0, lines[line]);
        text = lines.join("\n");
        break;
      case 5: {
        const other = rng.int(lines.length);
        [lines[line], lines[other]] = [lines[other], lines[line]];
        text = lines.join("\n");
        break;
      }
      case 6: // indent or dedent one line
        lines[line] = rng.chance(0.5)
          ? " ".repeat(1 + rng.int(4)) + lines[line]
          : lines[line].replace(/^ {1,2}/, "");
        text = lines.join("\n");
        break;
      case 7:
        text = text.slice(0, at);
        break;
      case 8: { // delete a span
        text = text.slice(0, at) + text.slice(at + 1 + rng.int(8));
        break;
      }
      default: { // random characters, mostly printable ASCII
        let noise = "";
        for (let i = 0, n = 1 + rng.int(6); i < n; i++) {
          noise += rng.chance(0.9)
            ? String.fromCharCode(32 + rng.int(95))
            : String.fromCharCode(rng.int(0x3000));
        }
        text = text.slice(0, at) + noise + text.slice(at);
      }
    }
  }
  return text;
}

// ------------------------------------------------------------------------------------------- runner

export interface FuzzOptions {
  /** @default {KF_FUZZ_SEED, else a stable hash of the target name} */
  seed?: number;
  /** @default {KF_FUZZ_ITERATIONS, else 10000} */
  iterations?: number;
  /**
   * The iterations must finish within this, or it counts as a hang; counted from when the worker has
   * loaded the target (type-checking and imports on a loaded machine take their own time).
   * @default {KF_FUZZ_TIMEOUT_MS, else 120000}
   */
  timeoutMs?: number;
  /** Run only this iteration, to replay a failure. @default {KF_FUZZ_ONLY} */
  only?: number;
}

/** Loading a target in a fresh worker type-checks and imports it: seconds on a busy CI machine. */
const WORKER_START_TIMEOUT_MS = 120_000;

export interface FuzzReport {
  target: string;
  seed: number;
  iterations: number;
  elapsedMs: number;
  /** How many inputs were rejected with a typed error (the rest were accepted). */
  rejected: number;
}

/** Messages between the runner and its worker. */
export type WorkerRequest = {
  module: string;
  target: string;
  seed: number;
  iterations: number;
  only?: number;
};
export type WorkerMessage =
  | { type: "ready" }
  | { type: "progress"; iteration: number }
  | { type: "failure"; iteration: number; input: string; error: string }
  | { type: "done"; iterations: number; rejected: number; elapsedMs: number };

function envNumber(name: string): number | undefined {
  const value = Deno.env.get(name);
  return value === undefined || value === "" ? undefined : Number(value);
}

/**
 * Runs `targets[target]` from `module` (a URL to a module exporting `targets`) in a Worker, for a fixed
 * number of iterations from a fixed seed, and throws on the first violated property, untyped error, or
 * when the run does not finish within its deadline (naming the iteration it was stuck in). Note: Deno's
 * Worker.terminate() cannot stop a worker stuck in synchronous code, so a real hang keeps a core busy until the
 * test process ends; the run has failed by then anyway.
 */
export async function runFuzz(module: URL, target: string, options: FuzzOptions = {}): Promise<FuzzReport> {
  const seed = options.seed ?? envNumber("KF_FUZZ_SEED") ?? hash32(target);
  const iterations = options.iterations ?? envNumber("KF_FUZZ_ITERATIONS") ?? 10_000;
  const timeoutMs = options.timeoutMs ?? envNumber("KF_FUZZ_TIMEOUT_MS") ?? 120_000;
  const only = options.only ?? envNumber("KF_FUZZ_ONLY");
  const worker = new Worker(new URL("./_fuzz_worker.ts", import.meta.url), { type: "module" });
  const reproduce = (iteration: number) =>
    `reproduce with KF_FUZZ_SEED=${seed} KF_FUZZ_ONLY=${iteration} deno test -A <this test file>`;
  let last = -1;
  const result = Promise.withResolvers<FuzzReport>();
  const armDeadline = (ms: number, what: () => string) =>
    setTimeout(() => result.reject(new Error(`fuzz ${target}: ${what()}`)), ms);
  let deadline = armDeadline(
    WORKER_START_TIMEOUT_MS,
    () => `the worker did not load the target within ${WORKER_START_TIMEOUT_MS} ms`,
  );
  worker.onmessage = (event: MessageEvent<WorkerMessage>) => {
    const message = event.data;
    if (message.type === "ready") {
      clearTimeout(deadline);
      deadline = armDeadline(
        timeoutMs,
        () =>
          `no answer within ${timeoutMs} ms (seed ${seed}); stuck in iteration ${last + 1}: ${
            reproduce(last + 1)
          }`,
      );
    } else if (message.type === "progress") last = message.iteration;
    else if (message.type === "failure") {
      result.reject(
        new Error(
          `fuzz ${target}: iteration ${message.iteration} (seed ${seed}) failed: ${message.error}\n` +
            `input: ${message.input}\n${reproduce(message.iteration)}`,
        ),
      );
    } else {
      result.resolve({
        target,
        seed,
        iterations: message.iterations,
        elapsedMs: message.elapsedMs,
        rejected: message.rejected,
      });
    }
  };
  worker.onerror = (event) => {
    event.preventDefault();
    result.reject(new Error(`fuzz ${target}: the worker crashed: ${event.message}`));
  };
  const request: WorkerRequest = { module: module.href, target, seed, iterations, only };
  worker.postMessage(request);
  try {
    return await result.promise;
  } finally {
    clearTimeout(deadline);
    worker.terminate();
  }
}

/** The worker side: runs the iterations and reports; exported for the worker module. */
export async function runIterations(
  fuzzTarget: FuzzTarget,
  request: WorkerRequest,
  post: (message: WorkerMessage) => void,
): Promise<void> {
  const started = performance.now();
  let rejected = 0;
  let ran = 0;
  const first = request.only ?? 0;
  const end = request.only === undefined ? request.iterations : request.only + 1;
  for (let i = first; i < end; i++) {
    // every iteration, so a hang names its input exactly (a message costs microseconds)
    post({ type: "progress", iteration: i - 1 });
    const rng = Prng.forIteration(request.seed, i);
    let input: unknown;
    try {
      input = fuzzTarget.input(rng, i);
    } catch (error) {
      const detail = error instanceof Error
        ? `${error.name}: ${error.message}\n${error.stack ?? ""}`
        : String(error);
      post({ type: "failure", iteration: i, input: "(the input generator failed)", error: detail });
      return;
    }
    try {
      await fuzzTarget.run(input);
    } catch (error) {
      if (fuzzTarget.typed.some((type) => error instanceof type)) {
        rejected++;
      } else {
        const detail = error instanceof Error
          ? `${error.name}: ${error.message}\n${error.stack ?? ""}`
          : String(error);
        post({ type: "failure", iteration: i, input: fuzzTarget.show(input), error: detail });
        return;
      }
    }
    ran++;
  }
  post({ type: "done", iterations: ran, rejected, elapsedMs: performance.now() - started });
}
