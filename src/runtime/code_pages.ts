/**
 * Hands the kernel back the pages of the Deno executable that kf touched once and no longer runs.
 *
 * Why: of the ~69 MiB an idle `kf forward` showed as RSS, ~45 MiB were pages of the Deno executable itself
 * (RssFile: code and read-only data, ~95 MiB on disk) touched while modules loaded, the kubeconfig was read
 * and the first TLS handshakes ran, and never again. They are clean copies of the file, so dropping them from
 * kf's page tables loses nothing: they stay in the page cache, and a page that is needed again is mapped
 * back by a minor fault (no disk read, microseconds). What stays resident is what the forward really uses:
 * about 40 MiB idle (measured, installed form), ~62 MiB right after 2000 requests, and again less once the
 * forward has been idle for a while.
 *
 * Only read-only mappings of the executable without anonymous pages qualify: a page of a private mapping that
 * was written (e.g. by the loader's relocations) became a private copy, which MADV_DONTNEED would reset to
 * the file's content. (Private_Dirty is no guide: a binary that was just installed and not yet written back
 * to disk counts as dirty page cache, and dropping those pages is as safe.) Linux only; elsewhere, or
 * without the FFI permission, nothing happens.
 */

/** madvise(2) advice on Linux: drop the range from this process's page tables. */
const MADV_DONTNEED = 4;
const SYMBOLS = { madvise: { parameters: ["usize", "usize", "i32"], result: "i32" } } as const;

/** One mapping of /proc/self/smaps that madvise may drop. */
export interface CleanMapping {
  start: bigint;
  end: bigint;
  /** Resident size before, in bytes. */
  residentBytes: number;
}

/**
 * The read-only mappings of `executable` in /proc/PID/smaps text that hold no anonymous (copied-on-write)
 * or swapped page: every page is the file's own page in the page cache. With what of them is resident.
 */
export function cleanExecutableMappings(smaps: string, executable: string): CleanMapping[] {
  const found: CleanMapping[] = [];
  let current: (CleanMapping & { eligible: boolean; copied: boolean }) | undefined;
  const finish = () => {
    if (current?.eligible && !current.copied) {
      found.push({ start: current.start, end: current.end, residentBytes: current.residentBytes });
    }
  };
  for (const line of smaps.split("\n")) {
    // "55d0c0e00000-55d0c2987000 r--p 00000000 08:01 1234   /path/to/deno"
    const header = /^([0-9a-f]+)-([0-9a-f]+) ([rwxps-]{4}) \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (header) {
      finish();
      const [, start, end, perms, path] = header;
      current = {
        start: BigInt(`0x${start}`),
        end: BigInt(`0x${end}`),
        residentBytes: 0,
        eligible: path === executable && perms[0] === "r" && perms[1] !== "w",
        copied: false,
      };
      continue;
    }
    if (!current) continue;
    const field = /^(Rss|Anonymous|Swap):\s+(\d+) kB/.exec(line);
    if (!field) continue;
    const kib = Number(field[2]);
    if (field[1] === "Rss") current.residentBytes = kib * 1024;
    else if (kib > 0) current.copied = true;
  }
  finish();
  return found;
}

/** What releaseCodePages() did: bytes that were resident in the mappings it dropped. */
export interface ReleasedPages {
  mappings: number;
  residentBytes: number;
}

/**
 * Drops the clean pages of the Deno executable from this process's resident set (see the top of this file);
 * undefined where that is not possible (not Linux, no FFI permission, no /proc).
 */
export function releaseCodePages(): ReleasedPages | undefined {
  if (Deno.build.os !== "linux") return undefined;
  let libc: Deno.DynamicLibrary<typeof SYMBOLS>;
  let mappings: CleanMapping[];
  try {
    mappings = cleanExecutableMappings(
      Deno.readTextFileSync("/proc/self/smaps"),
      Deno.realPathSync(Deno.execPath()),
    );
    libc = Deno.dlopen("libc.so.6", SYMBOLS);
  } catch {
    return undefined;
  }
  try {
    let released = 0;
    let residentBytes = 0;
    for (const mapping of mappings) {
      if (libc.symbols.madvise(mapping.start, mapping.end - mapping.start, MADV_DONTNEED) !== 0) continue;
      released++;
      residentBytes += mapping.residentBytes;
    }
    return { mappings: released, residentBytes };
  } finally {
    libc.close();
  }
}

/** When a session's pages are trimmed, and what counts as idle. */
export interface TrimCodePagesOptions {
  /** Resolves when start-up is over (every forward has its first pod list). */
  settled: Promise<unknown>;
  /** Resolves when the session ends: no more trimming. */
  done: Promise<unknown>;
  /** Connections open now and accepted so far, over the session's forwards. */
  connections: () => { open: number; total: number };
  /** After `settled`, until the first trim: TLS handshakes and first watch events are done by then. */
  afterStartMs?: number;
  /** A forward that served connections and then had none for this long is trimmed again. */
  idleMs?: number;
}

/**
 * Trims the session's code pages once start-up is over, and again each time the forwards go idle after
 * serving connections: the code of a burst of traffic is not kept resident for the hours a forward may then
 * sit unused. Timers do not keep the process alive and stop with `done`.
 */
export function trimCodePages(options: TrimCodePagesOptions): void {
  const { afterStartMs = 1_000, idleMs = 60_000 } = options;
  let over = false;
  // the first trim's timeout, then the idle check's interval (one timer id pool for both)
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stop = () => {
    over = true;
    clearTimeout(timer);
  };
  void options.done.then(stop, stop);
  const trimWhenIdleAgain = () => {
    let trimmedAt = options.connections().total;
    let lastTotal = trimmedAt;
    return () => {
      const { open, total } = options.connections();
      // idle for a whole interval, and connections were served since the last trim
      if (open === 0 && total === lastTotal && total !== trimmedAt) {
        releaseCodePages();
        trimmedAt = total;
      }
      lastTotal = total;
    };
  };
  void options.settled.then(() => {
    if (over) return;
    const first = setTimeout(() => {
      if (releaseCodePages() === undefined) return; // not possible here: no idle checks either
      const check = setInterval(trimWhenIdleAgain(), idleMs);
      Deno.unrefTimer(check);
      timer = check;
    }, afterStartMs);
    Deno.unrefTimer(first);
    timer = first;
  });
}
