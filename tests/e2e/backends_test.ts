/**
 * Real servers behind the pods (PostgreSQL, MariaDB, Redis, nginx with HTTP/2; see tests/cluster/backends.sh),
 * driven by their own command-line clients through kf (default transport) and, side by side, through
 * `kubectl port-forward`: each works, and after every pod of the target is force-deleted a new connection
 * still works through the same kf process. kubectl's results are printed, not asserted (it is expected to
 * lose its pod).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  cluster,
  forceDeletePods,
  freePort,
  Proc,
  readyPods,
  sleep,
  startKf,
  tempStateDir,
  until,
} from "./_harness.ts";

const backendEnv = {
  PGPASSWORD: "kf",
  MYSQL_PWD: "kf",
};

/** Runs a client command with a time limit; never throws. */
async function client(command: string, args: string[], timeoutMs = 60_000) {
  const child = new Deno.Command("timeout", {
    args: [String(Math.ceil(timeoutMs / 1000)), command, ...args],
    env: { ...cluster.env, ...backendEnv, PATH: cluster.path },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
  const out = await child.output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

interface Backend {
  app: string;
  /** The Service port. */
  port: number;
  /** A short check through a local port: resolves what went wrong, or undefined when it worked. */
  check(local: number): Promise<string | undefined>;
}

function expect(out: { code: number; stdout: string; stderr: string }, pattern: RegExp): string | undefined {
  if (out.code === 0 && pattern.test(out.stdout)) return undefined;
  return `exit ${out.code}: ${(out.stdout + out.stderr).trim().slice(0, 400)}`;
}

const psql = (local: number, sql: string) =>
  client("psql", ["-h", "127.0.0.1", "-p", String(local), "-U", "kf", "-d", "kf", "-tAc", sql]);
const mariadb = (local: number, sql: string) =>
  client("mariadb", ["-h", "127.0.0.1", "-P", String(local), "-u", "kf", "-D", "kf", "-N", "-s", "-e", sql]);

const BACKENDS: Backend[] = [
  {
    app: "pg",
    port: 5432,
    check: async (local) => expect(await psql(local, "select 40 + 2"), /^42$/m),
  },
  {
    app: "mariadb",
    port: 3306,
    check: async (local) => expect(await mariadb(local, "select 40 + 2"), /^42$/m),
  },
  {
    app: "redis",
    port: 6379,
    check: async (local) => expect(await client("redis-cli", ["-p", String(local), "ping"]), /^PONG$/m),
  },
  {
    app: "web-tls",
    port: 443,
    check: async (local) => {
      const curl = await client("curl", [
        "-sk",
        "--http2",
        "--max-time",
        "20",
        `https://127.0.0.1:${local}/`,
      ]);
      const problem = expect(curl, /^web-tls HTTP\/2\.0$/m);
      if (problem) return `curl --http2: ${problem}`;
      const s = await client("openssl", [
        "s_client",
        "-connect",
        `127.0.0.1:${local}`,
        "-alpn",
        "h2",
        "-servername",
        "web-tls",
      ]);
      return expect(s, /ALPN protocol: h2/) && `openssl s_client: ${expect(s, /ALPN protocol: h2/)}`;
    },
  },
];

/** kf forward TARGET 0:PORT; resolves with the process and the local port it bound. */
async function startKfForward(target: string, port: number): Promise<{ proc: Proc; local: number }> {
  const local = freePort();
  const proc = startKf(["forward", target, `${local}:${port}`], { KF_STATE_DIR: tempStateDir() });
  await proc.waitFor(/ready pod=/, 30_000);
  return { proc, local };
}

async function startKubectlForward(target: string, port: number): Promise<{ proc: Proc; local: number }> {
  const local = freePort();
  const proc = new Proc("kubectl", ["port-forward", target, `${local}:${port}`]);
  await proc.waitFor(/Forwarding from 127\.0\.0\.1/, 30_000);
  return { proc, local };
}

/** Force-deletes every pod of app and waits for two Ready replacements. */
const deleteAllPods = (app: string) => forceDeletePods(`app=${app}`);

for (const backend of BACKENDS) {
  Deno.test(`${backend.app}: its own client works through kf, and again after every pod is force-deleted`, async () => {
    await until(
      async () => (await readyPods(`app=${backend.app}`)).length >= 2,
      60_000,
      `${backend.app} pods`,
    );
    const kf = await startKfForward(`svc/${backend.app}`, backend.port);
    const kubectlForward = await startKubectlForward(`svc/${backend.app}`, backend.port);
    try {
      assert.equal(await backend.check(kf.local), undefined, "through kf");
      const kubectlBefore = await backend.check(kubectlForward.local);
      await deleteAllPods(backend.app);
      const afterDelete = await backend.check(kf.local);
      assert.equal(afterDelete, undefined, `through kf after the pods were deleted:\n${kf.proc.output}`);
      const kubectlAfter = await backend.check(kubectlForward.local);
      console.log(
        `${backend.app}: kf ok before and after deleting all pods; kubectl port-forward: before ${
          kubectlBefore ?? "ok"
        }, after ${kubectlAfter ? "FAILED (" + kubectlAfter.split("\n")[0] + ")" : "ok"}`,
      );
    } finally {
      await kubectlForward.proc.stop();
      await kf.proc.stop();
    }
  });
}

/** The tps line of a pgbench run, or why it failed. */
function pgbenchResult(out: { code: number; stdout: string; stderr: string }) {
  const tps = out.stdout.match(/tps = ([\d.]+)/);
  const failed = out.stdout.match(/number of failed transactions: (\d+)/);
  return {
    ok: out.code === 0 && tps !== null,
    tps: tps ? Number(tps[1]) : 0,
    failed: failed ? Number(failed[1]) : 0,
  };
}

Deno.test("pgbench -c 4 -T 10 and redis-benchmark -q -n 20000 run through kf without errors", async () => {
  const pg = await startKfForward("svc/pg", 5432);
  const redis = await startKfForward("svc/redis", 6379);
  try {
    const bench = await client("pgbench", [
      "-h",
      "127.0.0.1",
      "-p",
      String(pg.local),
      "-U",
      "kf",
      "-n",
      "-c",
      "4",
      "-T",
      "10",
      "kf",
    ]);
    const result = pgbenchResult(bench);
    assert.ok(result.ok, bench.stdout + bench.stderr);
    assert.equal(result.failed, 0);
    console.log(`pgbench -c 4 -T 10 through kf: ${result.tps} tps`);
    const rb = await client("redis-benchmark", ["-p", String(redis.local), "-q", "-n", "20000"], 300_000);
    assert.equal(rb.code, 0, rb.stderr);
    const rows = rb.stdout.split(/\r|\n/).filter((line) => /requests per second/.test(line));
    assert.ok(rows.length >= 10, rb.stdout);
    console.log(`redis-benchmark through kf: ${rows.length} tests, e.g. ${rows[0].trim()}`);
  } finally {
    await redis.proc.stop();
    await pg.proc.stop();
  }
});

async function abortedConnects(): Promise<number> {
  const out = await client("mariadb", [
    "-h",
    "127.0.0.1",
    "-P",
    cluster.env.KF_BACKEND_MARIADB_PORT,
    "-u",
    "kf",
    "-N",
    "-s",
    "-e",
    "show global status like 'Aborted_connects'",
  ]);
  assert.equal(out.code, 0, out.stderr);
  return Number(out.stdout.trim().split(/\s+/)[1]);
}

async function incompleteStartupPackets(): Promise<number> {
  const text = await Deno.readTextFile(join(cluster.env.KF_BACKEND_DIR, "logs", "postgres.log"));
  return text.split("\n").filter((line) => /incomplete startup packet/.test(line)).length;
}

Deno.test("idle forwards to MariaDB and PostgreSQL are polite, and a client after 30 s idle logs in at once", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "kf-backends-" });
  const mariadbPort = freePort();
  const pgPort = freePort();
  const config = join(dir, "kf.yaml");
  Deno.writeTextFileSync(
    config,
    [
      "forwards:",
      "  - name: mariadb",
      "    target: svc/mariadb",
      `    ports: ["${mariadbPort}:3306"]`,
      "  - name: pg",
      "    target: svc/pg",
      `    ports: ["${pgPort}:5432"]`,
      "",
    ].join("\n"),
  );
  const abortedBefore = await abortedConnects();
  const startupBefore = await incompleteStartupPackets();
  const started = performance.now();
  const proc = startKf(["forward", "-f", config], { KF_STATE_DIR: tempStateDir() });
  try {
    await proc.waitFor(/mariadb .*ready pod=/, 30_000);
    await proc.waitFor(/pg .*ready pod=/, 30_000);
    await sleep(30_000);
    const login = await mariadb(mariadbPort, "select 'logged in'");
    assert.equal(login.code, 0, `first try after 30 s idle: ${login.stderr}\n${proc.output}`);
    assert.match(login.stdout, /logged in/);
    await sleep(Math.max(0, 120_000 - (performance.now() - started)));
    const aborted = (await abortedConnects()) - abortedBefore;
    const incomplete = (await incompleteStartupPackets()) - startupBefore;
    console.log(
      `2 min idle: MariaDB Aborted_connects +${aborted}, PostgreSQL "incomplete startup packet" +${incomplete}`,
    );
    assert.ok(aborted <= 2, `Aborted_connects grew by ${aborted}`);
    assert.ok(incomplete <= 2, `PostgreSQL logged ${incomplete} incomplete startup packets`);
    // the forwards still serve after the idle period
    assert.match((await psql(pgPort, "select 'still here'")).stdout, /still here/);
  } finally {
    await proc.stop();
    Deno.removeSync(dir, { recursive: true });
  }
});
