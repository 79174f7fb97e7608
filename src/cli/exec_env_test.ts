import assert from "node:assert/strict";
import { dotenv, envName, forwardEnv } from "./exec_env.ts";
import { UsageError } from "../errors.ts";

Deno.test("envName upper-cases and replaces everything but letters and digits", () => {
  assert.deepEqual(envName("api"), "API");
  assert.deepEqual(envName("api-v2.internal"), "API_V2_INTERNAL");
  assert.deepEqual(envName("1db"), "1DB");
});

Deno.test("forwardEnv: host and first port, then one variable per remote port", () => {
  const env = forwardEnv([
    {
      name: "api",
      listeners: [
        { address: "127.0.0.1", port: 41000, remote: 80 },
        { address: "127.0.0.1", port: 41001, remote: "metrics" },
      ],
    },
    { name: "db-main", listeners: [{ address: "0.0.0.0", port: 5432, remote: 5432 }] },
  ]);
  assert.deepEqual(env, {
    KF_API_HOST: "127.0.0.1",
    KF_API_PORT: "41000",
    KF_API_PORT_80: "41000",
    KF_API_PORT_METRICS: "41001",
    KF_DB_MAIN_HOST: "127.0.0.1",
    KF_DB_MAIN_PORT: "5432",
    KF_DB_MAIN_PORT_5432: "5432",
  });
  assert.deepEqual(dotenv({ A: "1", B: "::1" }), "A=1\nB=::1\n");
});

Deno.test("forwardEnv prefers the IPv4 address of a port that listens on several", () => {
  const env = forwardEnv([{
    name: "web",
    listeners: [{ address: "::1", port: 8080, remote: 80 }, { address: "127.0.0.1", port: 8080, remote: 80 }],
  }]);
  assert.deepEqual(env.KF_WEB_HOST, "127.0.0.1");
  assert.deepEqual(env.KF_WEB_PORT, "8080");
});

Deno.test("forwardEnv refuses two forwards with the same variable name", () => {
  assert.throws(
    () =>
      forwardEnv([
        { name: "api-1", listeners: [] },
        { name: "api_1", listeners: [] },
      ]),
    UsageError,
  );
});
