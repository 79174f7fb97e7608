import assert from "node:assert/strict";
import {
  isSessionId,
  newSessionId,
  parseSessionRecord,
  readSessionRecords,
  recordPath,
  removeSessionRecord,
  socketPath,
  writeSessionRecord,
} from "./session_file.ts";
import { forward, recordFor, tempStateDir } from "./testdata/helpers.ts";

Deno.test("writeSessionRecord() writes mode 0600 atomically and leaves no temp files", async () => {
  const dir = await tempStateDir();
  try {
    const record = recordFor(dir, "kabcde", Deno.pid);
    // Many concurrent writers: each one is a complete file at the final path, never a temp leftover.
    await Promise.all(
      Array.from(
        { length: 50 },
        (_, i) => writeSessionRecord(dir, { ...record, forwards: [forward("api", { totalConnections: i })] }),
      ),
    );
    const names = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name);
    assert.deepEqual(names, ["kabcde.json"]);
    assert.equal((await Deno.stat(recordPath(dir, "kabcde"))).mode! & 0o777, 0o600);
    const { records, problems } = await readSessionRecords(dir);
    assert.deepEqual(problems, []);
    assert.equal(records.length, 1);
    assert.equal(records[0].id, "kabcde");
    assert.equal(records[0].forwards[0].name, "api");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readSessionRecords() reports a corrupt or partial file and still returns the good ones", async () => {
  const dir = await tempStateDir();
  try {
    await writeSessionRecord(dir, recordFor(dir, "kgoodd", Deno.pid));
    await Deno.writeTextFile(`${dir}/kbroke.json`, '{"version":1,"id":"kbro');
    await Deno.writeTextFile(
      `${dir}/kfutur.json`,
      JSON.stringify({ ...recordFor(dir, "kfutur", 1), version: 2 }),
    );
    await Deno.writeTextFile(`${dir}/kwrong.json`, JSON.stringify(recordFor(dir, "kother", 1)));
    await Deno.writeTextFile(`${dir}/.kgoodd.abcdefgh.tmp`, "{"); // a write in flight
    await Deno.writeTextFile(`${dir}/notes.txt`, "not a session");
    const { records, problems } = await readSessionRecords(dir);
    assert.deepEqual(records.map((r) => r.id), ["kgoodd"]);
    assert.deepEqual(problems.map((p) => p.file.split("/").pop()), [
      "kbroke.json",
      "kfutur.json",
      "kwrong.json",
    ]);
    assert.match(problems[0].error, /not valid JSON/);
    assert.match(problems[1].error, /unsupported version 2/);
    assert.match(problems[2].error, /does not match the file name/);
    assert.ok(await Deno.stat(`${dir}/.kgoodd.abcdefgh.tmp`), "a fresh temp file is left alone");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readSessionRecords() removes a temp file orphaned by a killed writer", async () => {
  const dir = await tempStateDir();
  try {
    const orphan = `${dir}/.kgoodd.abcdefgh.tmp`;
    await Deno.writeTextFile(orphan, "{");
    await Deno.utime(orphan, new Date(Date.now() - 120_000), new Date(Date.now() - 120_000));
    await readSessionRecords(dir);
    await assert.rejects(Deno.stat(orphan), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readSessionRecords() ignores the start report of kf forward --detach, and removes an orphaned one", async () => {
  const dir = await tempStateDir();
  try {
    await writeSessionRecord(dir, recordFor(dir, "kgoodd", Deno.pid));
    const fresh = `${dir}/.detach-4242-0a1b2c3d.json`;
    const orphan = `${dir}/.detach-4243-0a1b2c3d.json`;
    for (const file of [fresh, orphan]) await Deno.writeTextFile(file, '{"ok":true,"id":"kgoodd"}');
    await Deno.utime(orphan, new Date(Date.now() - 120_000), new Date(Date.now() - 120_000));
    const { records, problems } = await readSessionRecords(dir);
    assert.deepEqual(records.map((r) => r.id), ["kgoodd"]);
    assert.deepEqual(problems, [], "a report is not a broken session file");
    assert.ok(await Deno.stat(fresh), "a fresh report is left for its reader");
    await assert.rejects(Deno.stat(orphan), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readSessionRecords() of a missing dir is empty", async () => {
  assert.deepEqual(await readSessionRecords("/nonexistent/kf-state"), { records: [], problems: [] });
});

Deno.test("parseSessionRecord() names the bad field", () => {
  const good = recordFor("/d", "kabcde", 1);
  assert.throws(() => parseSessionRecord(JSON.stringify({ ...good, pid: "1" })), /field 'pid'/);
  assert.throws(() => parseSessionRecord(JSON.stringify({ ...good, argv: [1] })), /field 'argv'/);
  assert.throws(
    () => parseSessionRecord(JSON.stringify({ ...good, forwards: [{}] })),
    /field 'forwards\[0\]'/,
  );
  assert.throws(() => parseSessionRecord("[]"), /field 'id'|version/);
  assert.throws(() => parseSessionRecord(JSON.stringify({ ...good, graceMs: -1 })), /field 'graceMs'/);
  assert.equal(parseSessionRecord(JSON.stringify({ ...good, graceMs: 7000 })).graceMs, 7000);
  assert.equal(parseSessionRecord(JSON.stringify(good)).id, "kabcde");
});

Deno.test("removeSessionRecord() removes the file and the socket, and tolerates missing ones", async () => {
  const dir = await tempStateDir();
  try {
    await writeSessionRecord(dir, recordFor(dir, "kabcde", Deno.pid));
    await Deno.writeTextFile(socketPath(dir, "kabcde"), "");
    await removeSessionRecord(dir, "kabcde");
    assert.deepEqual(await Array.fromAsync(Deno.readDir(dir)), []);
    await removeSessionRecord(dir, "kabcde");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("newSessionId() is 6 unambiguous chars starting with a letter, and unused in the dir", async () => {
  const dir = await tempStateDir();
  try {
    const ids = new Set<string>();
    for (let i = 0; i < 300; i++) {
      const id = await newSessionId(dir);
      assert.match(id, /^[a-hjkmnp-z][a-hjkmnp-z2-9]{5}$/);
      assert.ok(isSessionId(id));
      ids.add(id);
      await Deno.writeTextFile(recordPath(dir, id), "");
    }
    assert.equal(ids.size, 300, "never an id whose file exists");
    assert.equal(isSessionId("123456"), false);
    assert.equal(isSessionId("k3m9q0"), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
