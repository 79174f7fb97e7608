/**
 * The bash completion script, sourced into a real bash and driven like readline does on TAB (COMP_WORDS and
 * COMP_CWORD, then the completion function); `kf` in it is this checkout's kf, through a small wrapper.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { writeSessionRecord } from "../state/session_file.ts";
import { forward, killQuietly, recordFor, spawn, tempStateDir } from "../state/testdata/helpers.ts";
import { optionValues } from "./completion_values.ts";
import { contextNames, forwardNames } from "./completion_files.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

async function kfWrapper(dir: string): Promise<string> {
  const bin = join(dir, "bin");
  await Deno.mkdir(bin, { recursive: true });
  const kf = join(bin, "kf");
  await Deno.writeTextFile(
    kf,
    `#!/bin/sh\nexec "${Deno.execPath()}" run -A --config "${ROOT}deno.json" "${ROOT}main.ts" "$@"\n`,
  );
  await Deno.chmod(kf, 0o755);
  return bin;
}

/** Completes the words as typed (the last one is the word under the cursor) and returns COMPREPLY. */
async function complete(env: Record<string, string>, words: string[]): Promise<string[]> {
  const script = `
    source <(kf completion bash) || exit 3
    COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")})
    COMP_CWORD=${words.length - 1}
    _kf_complete
    printf '%s\\n' "\${COMPREPLY[@]}"
  `;
  const out = await new Deno.Command("bash", { args: ["-c", script], env, stdout: "piped", stderr: "piped" })
    .output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  return new TextDecoder().decode(out.stdout).split("\n").filter(Boolean).sort();
}

Deno.test("bash completion: kf st<TAB> and kf stop <TAB> with a live session, contexts and -f forwards", async () => {
  const dir = await tempStateDir();
  const sleeper = spawn("sleep", ["30"]);
  try {
    const bin = await kfWrapper(dir);
    const kubeconfig = join(dir, "kubeconfig");
    await Deno.writeTextFile(
      kubeconfig,
      "apiVersion: v1\nkind: Config\ncontexts:\n- name: dev\n  context: {cluster: c, user: u}\n" +
        "- name: prod-eu\n  context: {cluster: c, user: u}\ncurrent-context: dev\n",
    );
    const config = join(dir, "kf.yaml");
    await Deno.writeTextFile(
      config,
      "forwards:\n  - name: api\n    target: svc/api\n    ports: [8080:80]\n" +
        "  - target: deploy/web\n    ports: [3000]\n  - selector: app=db\n    ports: [5432]\n",
    );
    await writeSessionRecord(
      dir,
      recordFor(dir, "kcomp1", sleeper.pid, { forwards: [forward("api"), forward("metrics")] }),
    );
    const env = {
      PATH: `${bin}:${Deno.env.get("PATH")}`,
      HOME: dir,
      KF_STATE_DIR: dir,
      KUBECONFIG: kubeconfig,
      DENO_DIR: Deno.env.get("DENO_DIR") ?? join(Deno.env.get("HOME") ?? "/", ".cache", "deno"),
    };

    assert.deepEqual(await complete(env, ["kf", "st"]), ["stop"]);
    assert.deepEqual(await complete(env, ["kf", "stop", ""]), ["api", "kcomp1", "metrics"]);
    assert.deepEqual(await complete(env, ["kf", "stop", "m"]), ["metrics"]);
    assert.deepEqual(await complete(env, ["kf", "forward", "--con"]), ["--context"]);
    assert.deepEqual(await complete(env, ["kf", "forward", "--context", ""]), ["dev", "prod-eu"]);
    assert.deepEqual(await complete(env, ["kf", "forward", "-f", config, "--only", "api,"]), [
      "api,api",
      "api,db",
      "api,web",
    ]);
    assert.deepEqual(await complete(env, ["kf", "ps", "-o", ""]), ["json", "table"]);
    assert.deepEqual(await complete(env, ["kf", "completion", ""]), ["bash", "fish", "zsh"]);
  } finally {
    await killQuietly(sleeper);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("completion values: flags typed so far, kubeconfig contexts, forward names", async () => {
  assert.deepEqual(
    optionValues(["forward", "-f", "a.yaml", "--file=b.yaml", "--only", "x"], ["-f", "--file"]),
    [
      "a.yaml",
      "b.yaml",
    ],
  );
  const dir = await Deno.makeTempDir();
  try {
    const broken = join(dir, "broken.yaml");
    await Deno.writeTextFile(broken, "forwards: [ {");
    assert.deepEqual(forwardNames([broken, join(dir, "missing.yaml")]), []);
    assert.deepEqual(contextNames([broken]), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

async function hasShell(shell: string): Promise<boolean> {
  try {
    return (await new Deno.Command(shell, { args: ["-c", "true"], stdout: "null", stderr: "null" }).output())
      .success;
  } catch {
    return false;
  }
}

Deno.test("fish script: `complete -C` completes kf st, kf ps -o and kf stop (where fish is installed)", async () => {
  if (!await hasShell("fish")) return console.log("  fish not installed: checked the script text only");
  const dir = await tempStateDir();
  const sleeper = spawn("sleep", ["30"]);
  try {
    const bin = await kfWrapper(dir);
    await writeSessionRecord(dir, recordFor(dir, "kfish1", sleeper.pid, { forwards: [forward("db")] }));
    const script = join(dir, "kf.fish");
    const generated = await new Deno.Command(join(bin, "kf"), {
      args: ["completion", "fish"],
      stdout: "piped",
    })
      .output();
    await Deno.writeFile(script, generated.stdout);
    const complete = async (line: string) => {
      const out = await new Deno.Command("fish", {
        args: ["--no-config", "-c", `source ${script}; complete -C '${line}'`],
        env: { PATH: `${bin}:${Deno.env.get("PATH")}`, KF_STATE_DIR: dir, HOME: dir },
        stdout: "piped",
      }).output();
      return new TextDecoder().decode(out.stdout).split("\n").filter(Boolean).map((l) => l.split("\t")[0])
        .sort();
    };
    assert.deepEqual(await complete("kf st"), ["stop"]);
    assert.deepEqual(await complete("kf ps -o "), ["json", "table"]);
    assert.deepEqual(await complete("kf stop "), ["db", "kfish1"]);
  } finally {
    await killQuietly(sleeper);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("zsh script: bash-style through bashcompinit; loads in zsh where installed", async () => {
  const zsh = new TextDecoder().decode(
    (await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${ROOT}main.ts`, "completion", "zsh"],
      stdout: "piped",
    }).output()).stdout,
  );
  assert.match(zsh, /bashcompinit/);
  assert.match(zsh, /complete -F _kf_complete kf/);
  const bash = await new Deno.Command("bash", { args: ["-n", "-c", zsh.replace(/^autoload.*$/m, "")] })
    .output();
  assert.equal(bash.code, 0, "the function is plain bash");
  if (!await hasShell("zsh")) return console.log("  zsh not installed: checked the script text only");
  const loaded = await new Deno.Command("zsh", {
    args: [
      "-f",
      "-c",
      'autoload -U compinit && compinit -u -D; eval "$1"; whence -w _kf_complete',
      "zsh",
      zsh,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(loaded.code, 0, new TextDecoder().decode(loaded.stderr));
  assert.match(new TextDecoder().decode(loaded.stdout), /_kf_complete: function/);
});
