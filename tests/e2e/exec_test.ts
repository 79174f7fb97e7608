/** `kf exec` as a user runs it: real forwards to svc/echo, real commands (curl, sh) in between. */

import assert from "node:assert/strict";
import { join } from "node:path";
import { kf, Proc, REPO, sleep, tempStateDir, until } from "./_harness.ts";

Deno.test("kf exec: curl through the forward with KF_ECHO_HOST/KF_ECHO_PORT, then the forward is gone", async () => {
  const stateDir = tempStateDir();
  const envFile = join(stateDir, "forwards.env");
  const out = await kf(
    [
      "exec",
      "svc/echo",
      "0:80",
      "0:9000",
      "--env-file",
      envFile,
      "--",
      "sh",
      "-c",
      'curl -s --max-time 10 "http://$KF_ECHO_HOST:$KF_ECHO_PORT/" && echo && echo "port=$KF_ECHO_PORT http=$KF_ECHO_PORT_HTTP p80=$KF_ECHO_PORT_80 p9000=$KF_ECHO_PORT_9000"',
    ],
    { env: { KF_STATE_DIR: stateDir } },
  );
  assert.equal(out.code, 0, out.stderr);
  const [body, vars] = out.stdout.trim().split("\n");
  assert.match(body, /echo-/, "the echo pod answers with its name");
  const port = vars.match(/port=(\d+) /)![1];
  assert.notEqual(port, "0");
  assert.match(vars, new RegExp(`p80=${port} p9000=\\d+$`));
  const file = await Deno.readTextFile(envFile);
  assert.match(file, new RegExp(`^KF_ECHO_HOST=127\\.0\\.0\\.1$`, "m"));
  assert.match(file, new RegExp(`^KF_ECHO_PORT=${port}$`, "m"));
  // the forwards stopped with the command: nothing listens there any more, and no session is left
  await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port: Number(port) }));
  const ps = await kf(["ps", "-o", "json"], { env: { KF_STATE_DIR: stateDir } });
  assert.deepEqual(JSON.parse(ps.stdout).sessions, []);
});

Deno.test("kf exec takes kf forward's per-forward options: --log-requests reports each request on stderr", async () => {
  const stateDir = tempStateDir();
  const out = await kf(
    [
      "exec",
      "svc/echo",
      "0:80",
      "--log-requests",
      "--balance",
      "round-robin",
      "--",
      "sh",
      "-c",
      'curl -s --max-time 10 "http://$KF_ECHO_HOST:$KF_ECHO_PORT/?i=[1-4]"',
    ],
    { env: { KF_STATE_DIR: stateDir } },
  );
  assert.equal(out.code, 0, out.stderr);
  assert.equal(out.stdout.match(/echo-/g)?.length, 4, "every answer reaches the command's stdout");
  assert.doesNotMatch(out.stdout, /GET \//, "kf's request log stays off the command's stdout");
  const logged = [...out.stderr.matchAll(/^kf: echo GET \/ 200 pod=(echo-\S+) /gm)].map((m) => m[1]);
  assert.equal(logged.length, 4, out.stderr);
  // round-robin reached the forward: one keep-alive connection, more than one pod
  assert.ok(new Set(logged).size > 1, `round-robin: ${logged.join(" ")}`);
});

Deno.test("kf exec exits with the command's code, and with 127 for a missing command", async () => {
  const stateDir = tempStateDir();
  const env = { KF_STATE_DIR: stateDir };
  const failed = await kf(["exec", "svc/echo", "0:80", "--", "sh", "-c", "exit 7"], { env });
  assert.equal(failed.code, 7, failed.stderr);
  const missing = await kf(["exec", "svc/echo", "0:80", "--", "kf-no-such-command"], { env });
  assert.equal(missing.code, 127);
  assert.match(missing.stderr, /kf-no-such-command: command not found/);
});

Deno.test("kf exec with -f runs every forward of the config; names become KF_<NAME>_*", async () => {
  const dir = tempStateDir();
  const config = join(dir, "kf.yaml");
  await Deno.writeTextFile(
    config,
    "forwards:\n  - name: web-1\n    target: svc/echo\n    ports: ['0:http']\n" +
      "  - name: raw\n    selector: app=echo\n    ports: ['0:9000']\n",
  );
  const out = await kf(
    [
      "exec",
      "-f",
      config,
      "--",
      "sh",
      "-c",
      'curl -s --max-time 10 "http://$KF_WEB_1_HOST:$KF_WEB_1_PORT_HTTP/"; echo " raw=$KF_RAW_PORT"',
    ],
    { env: { KF_STATE_DIR: dir } },
  );
  assert.equal(out.code, 0, out.stderr);
  assert.match(out.stdout, /^echo-\S+ raw=\d+\n$/);
});

Deno.test("kf exec fails clearly (exit 1, command not run) when a forward never gets ready", async () => {
  const dir = tempStateDir();
  const marker = join(dir, "ran");
  const out = await kf(
    ["exec", "-l", "app=kf-nothing-matches", "0:80", "--ready-timeout", "2s", "--", "touch", marker],
    { env: { KF_STATE_DIR: dir } },
  );
  assert.equal(out.code, 1);
  assert.match(out.stderr, /not ready after 2s, the command was not run/);
  assert.match(out.stderr, /waiting-for-pod/);
  await assert.rejects(Deno.stat(marker));
});

Deno.test("kf exec passes SIGTERM on to the command and stops the forwards after it", async () => {
  const dir = tempStateDir();
  const proc = new Proc(Deno.execPath(), [
    "run",
    "-A",
    "--config",
    join(REPO, "deno.json"),
    join(REPO, "main.ts"),
    "exec",
    "svc/echo",
    "0:80",
    "--",
    "sh",
    "-c",
    "trap 'echo got-term; exit 42' TERM; echo \"listening $KF_ECHO_PORT\"; while :; do sleep 0.1; done",
  ], { KF_STATE_DIR: dir });
  try {
    const [, port] = await proc.waitFor(/^listening (\d+)$/);
    // the session is visible to kf ps while the command runs
    await until(
      async () => {
        const ps = await kf(["ps", "-o", "json"], { env: { KF_STATE_DIR: dir } });
        return JSON.parse(ps.stdout).sessions.length === 1;
      },
      10_000,
      "the exec session in kf ps",
    );
    proc.child.kill("SIGTERM");
    await proc.waitFor(/^got-term$/);
    const status = await proc.exited;
    assert.equal(status.code, 42);
    await sleep(50);
    await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port: Number(port) }));
  } finally {
    await proc.stop();
  }
});

Deno.test("kf exec with real clients: psql and redis-cli against the PostgreSQL and Redis pods", async () => {
  const dir = tempStateDir();
  const config = join(dir, "kf.yaml");
  await Deno.writeTextFile(
    config,
    "forwards:\n  - name: pg\n    target: svc/pg\n    ports: ['0:5432']\n" +
      "  - name: cache\n    target: svc/redis\n    ports: ['0:6379']\n",
  );
  const out = await kf(
    [
      "exec",
      "-f",
      config,
      "--",
      "sh",
      "-c",
      'PGPASSWORD=kf psql -h "$KF_PG_HOST" -p "$KF_PG_PORT" -U kf -d kf -tAc "select 40 + 2" && ' +
      'redis-cli -h "$KF_CACHE_HOST" -p "$KF_CACHE_PORT" ping',
    ],
    { env: { KF_STATE_DIR: dir } },
  );
  assert.equal(out.code, 0, out.stderr);
  assert.equal(out.stdout, "42\nPONG\n");
});
