/** Targets with known faults, to prove that the fuzz runner (src/_fuzz.ts) reports each kind of failure. */

import type { FuzzTarget } from "../_fuzz.ts";
import { UsageError } from "../errors.ts";

export const targets: Record<string, FuzzTarget<number>> = {
  /** Rejects odd inputs with a typed error: a clean run. */
  typedOnly: {
    input: (_rng, iteration) => iteration,
    run(n) {
      if (n % 2 === 1) throw new UsageError(`odd ${n}`);
    },
    typed: [UsageError],
    show: String,
  },
  /** Throws a TypeError at iteration 7. */
  untypedAt7: {
    input: (_rng, iteration) => iteration,
    run(n) {
      if (n === 7) throw new TypeError("cannot read properties of undefined");
    },
    typed: [UsageError],
    show: (n) => `input-${n}`,
  },
  /** Hangs at iteration 3 for longer than the test's deadline. */
  hangsAt3: {
    input: (_rng, iteration) => iteration,
    run(n) {
      // Far past the deadline the test sets, but finite: Deno's Worker.terminate() does not stop a worker
      // spinning in synchronous code, and an endless loop here kept a core busy for the rest of the test run
      // (it slowed every later test, and pushed the e2e handover times over their limit).
      const until = Date.now() + 12_000;
      while (n === 3 && Date.now() < until) Math.random();
    },
    typed: [],
    show: String,
  },
  /** Inputs from the PRNG, so a replayed iteration must see the same value as in the full run. */
  failsOnValue: {
    input: (rng) => rng.next(),
    run(n) {
      if (n % 1000 === 0) throw new RangeError(`value ${n}`);
    },
    typed: [],
    show: String,
  },
};
