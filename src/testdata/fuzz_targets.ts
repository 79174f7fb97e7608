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
  /** Never returns at iteration 3. */
  hangsAt3: {
    input: (_rng, iteration) => iteration,
    run(n) {
      // deliberately endless; the runner must terminate the worker
      while (n === 3) Math.random();
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
