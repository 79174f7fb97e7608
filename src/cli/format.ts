/** Small text formats shared by the live table and `kf ps`. */

/** "127.0.0.1:8080", "[::1]:8080". */
export function hostPort(address: string, port: number): string {
  return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}

/**
 * A forward's listeners, the addresses of one port grouped: "127.0.0.1+[::1]:8080->80,127.0.0.1+[::1]:9000->9000"
 * (with `withRemote`), so `localhost` reads as both loopbacks without doubling every port.
 */
export function formatListeners(
  listeners: ReadonlyArray<{ address: string; port: number; remote: number | string }>,
  withRemote: boolean,
): string {
  const groups: Array<{ addresses: string[]; port: number; remote: number | string }> = [];
  for (const l of listeners) {
    const last = groups.at(-1);
    if (last && last.port === l.port && last.remote === l.remote) last.addresses.push(l.address);
    else groups.push({ addresses: [l.address], port: l.port, remote: l.remote });
  }
  return groups.map((g) => {
    const hosts = g.addresses.map((a) => a.includes(":") ? `[${a}]` : a).join("+");
    return `${hosts}:${g.port}${withRemote ? `->${g.remote}` : ""}`;
  }).join(",");
}

/** "45s", "12m", "3h4m", "2d5h". */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 24) return m % 60 ? `${h}h${m % 60}m` : `${h}h`;
  const d = Math.floor(h / 24);
  return h % 24 ? `${d}d${h % 24}h` : `${d}d`;
}

/** "0", "512B", "1.5KiB", "12MiB". */
export function formatBytes(n: number): string {
  if (n === 0) return "0";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  const digits = unit === 0 || value >= 10 ? 0 : 1;
  return `${value.toFixed(digits)}${units[unit]}`;
}
