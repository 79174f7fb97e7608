/**
 * Fuzz targets for the config parser and the port and target parsers (run by fuzz_test.ts through
 * src/_fuzz.ts). Inputs are mutations of valid ones, so most iterations get deep into the parsers, plus
 * some pure noise. "Typed" here: ConfigErrors for a file, PortMappingError for a port, TargetError or
 * SelectorError for a target; each is a UsageError, so kf exits 2 with its message.
 */

import assert from "node:assert/strict";
import { isMap, isPair, isSeq, parseDocument, visit } from "yaml";
import type { Pair } from "yaml";
import { type FuzzTarget, mutateText, type Prng } from "../_fuzz.ts";
import { parseConfigText } from "./config.ts";
import { ConfigErrors } from "./config_error.ts";
import { formatPortMapping, parsePortMapping, PortMappingError } from "./ports.ts";
import { formatTarget, parseSelector, parseTarget, SelectorError, TargetError } from "./target.ts";

const CONFIG_SEEDS = [
  `# top-level defaults
context: dev
namespace: default
kubeconfig: ~/.kube/config
address: 127.0.0.1
podWaitTimeout: 30s
transport: auto
forwards:
  - name: api
    target: svc/api
    ports: ["8080:80", "9000:metrics"]
  - name: db
    selector: app=db,tier in (primary)
    namespace: data
    address: 127.0.0.2
    podWaitTimeout: 1m30s
    ports: [5432]
`,
  "forwards:\n  - {target: deploy/web, ports: [3000, ':8080'], transport: spdy}\n  - {target: web-0, ports: ['0:http']}\n",
  "defaults: &d [80]\nforwards:\n  - target: sts/pg\n    ports: *d\n    context: 'prod'\n",
  'forwards:\n  - name: "a.b_c-1"\n    target: pod/p\n    ports:\n      - 1\n      - "65535:65535"\n',
];
const CONFIG_WORDS = [
  "forwards:",
  "target:",
  "selector:",
  "ports:",
  "name:",
  "namespace:",
  "context:",
  "kubeconfig:",
  "address:",
  "podWaitTimeout:",
  "transport:",
  "svc/",
  "deploy/",
  "pod/",
  "- ",
  "&a ",
  "*a",
  "<<: ",
  "!!str ",
  "!!map ",
  "[",
  "{",
  "}, ",
  "null",
  "~",
  "true",
  "'",
  '"',
  "\n  - ",
  "\n    ",
  "::",
  "0.0.0.0",
  "::1",
  "localhost",
];

const HOME = { homeDir: "/home/fuzz" };

/** Values a user might put anywhere: valid ones of every setting, near misses, and wrong types. */
const VALUES: unknown[] = [
  "svc/api",
  "deploy/web",
  "pod/",
  "job/x",
  "",
  " ",
  "8080:80",
  "0:http",
  ":80",
  "1:2:3",
  0,
  -1,
  80,
  65536,
  1.5,
  "30s",
  "-5s",
  "1000h",
  "soon",
  "localhost",
  "localhost,::1",
  "10.0.0.5, 0.0.0.0",
  "::",
  "my-host",
  "Bad_NS",
  "dev",
  "a".repeat(300),
  "app=db",
  "app in (a",
  "!canary",
  "auto",
  "spdy",
  "quic",
  true,
  null,
  [],
  ["8080:80"],
  [80, "x"],
  ["localhost", 5],
  {},
  { target: "svc/a" },
  { target: "svc/b", ports: [81] },
];
const KEYS = [
  "name",
  "target",
  "selector",
  "ports",
  "namespace",
  "context",
  "kubeconfig",
  "address",
  "podWaitTimeout",
  "transport",
  "forwards",
  "prots",
  "Target",
  "ns",
  "<<",
  "service",
  "port",
];

/**
 * Structure-aware edit: parse a valid config, change one node of its tree (replace a value, drop or
 * duplicate a pair or item, rename a key), and print it again. The result is valid YAML that is often
 * almost a valid config, so it reaches the semantic checks instead of the YAML syntax errors.
 */
function mutateTree(rng: Prng, text: string): string {
  try {
    return editTree(rng, text);
  } catch {
    // an edit the yaml library cannot print (e.g. an alias left without its anchor): keep the original
    return text;
  }
}

function editTree(rng: Prng, text: string): string {
  const doc = parseDocument(text);
  if (doc.errors.length > 0) return text;
  const sites: Array<{ parent: { items: unknown[] }; index: number }> = [];
  visit(doc, {
    Map: (_key, node) => node.items.forEach((_item, index) => sites.push({ parent: node, index })),
    Seq: (_key, node) => node.items.forEach((_item, index) => sites.push({ parent: node, index })),
  });
  if (sites.length === 0) return text;
  const { parent, index } = rng.pick(sites);
  const item = parent.items[index];
  switch (rng.int(4)) {
    case 0: { // a new value
      const value = doc.createNode(rng.pick(VALUES));
      if (isPair(item)) (item as Pair).value = value;
      else parent.items[index] = value;
      break;
    }
    case 1: // drop it
      parent.items.splice(index, 1);
      break;
    case 2: // say it twice (a map's pair under another key, or the same list item again)
      if (isPair(item)) parent.items.splice(index, 0, doc.createPair(rng.pick(KEYS), (item as Pair).value));
      else if (!isMap(item) && !isSeq(item)) parent.items.splice(index, 0, item);
      else parent.items.splice(index, 0, doc.createNode(JSON.parse(JSON.stringify(doc.toJS()))));
      break;
    default: // another key
      if (isPair(item)) parent.items[index] = doc.createPair(rng.pick(KEYS), (item as Pair).value);
  }
  return doc.toString();
}

export const targets: Record<string, FuzzTarget<string>> = {
  configParser: {
    input(rng: Prng): string {
      if (rng.chance(0.05)) return new TextDecoder().decode(rng.bytes(rng.int(200)));
      let text = rng.pick(CONFIG_SEEDS);
      // mostly one round of edits, so many inputs stay close enough to valid to reach the deeper checks
      for (let i = 0, n = rng.chance(0.7) ? 1 : 2 + rng.int(3); i < n; i++) {
        text = rng.chance(0.5) ? mutateTree(rng, text) : mutateText(rng, text, CONFIG_WORDS);
      }
      return text;
    },
    run(text: string): void {
      let specs;
      try {
        specs = parseConfigText(text, "kf.yaml", HOME);
      } catch (error) {
        if (error instanceof ConfigErrors) {
          // every problem is positioned inside the file and formatted for the user
          assert.ok(error.errors.length > 0, "ConfigErrors without errors");
          const lines = text.split("\n").length;
          for (const e of error.errors) {
            assert.ok(e.line >= 1 && e.line <= lines + 1 && e.column >= 1, `position ${e.line}:${e.column}`);
            assert.equal(e.message, `kf.yaml:${e.line}:${e.column}: ${e.reason}`);
            assert.ok(!e.reason.includes("undefined"), `message leaks 'undefined': ${e.reason}`);
          }
        }
        throw error;
      }
      assert.ok(specs.length > 0, "a valid config has a forward");
      for (const spec of specs) {
        assert.ok(spec.ports.length > 0, "a forward has a port");
        assert.ok(spec.addresses.length > 0, "a forward has an address");
        assert.ok(Number.isInteger(spec.podWaitTimeoutMs) && spec.podWaitTimeoutMs >= 0);
        for (const port of spec.ports) assert.deepEqual(parsePortMapping(formatPortMapping(port)), port);
      }
    },
    typed: [ConfigErrors],
    show: (text) => JSON.stringify(text),
  },

  portParser: {
    input(rng: Prng): string {
      if (rng.chance(0.1)) return new TextDecoder().decode(rng.bytes(rng.int(12)));
      return mutateText(
        rng,
        rng.pick(["8080:80", "5432", ":http", "0:metrics", " 80 ", "65535:1", "1:a-b"]),
        [
          ":",
          "0",
          "65536",
          "-",
          "http",
        ],
      );
    },
    run(text: string): void {
      // numbers from YAML take the other branch of the parser
      const asNumber = Number(text);
      const inputs: Array<string | number> = [text];
      if (text.trim() !== "" && !Number.isNaN(asNumber)) inputs.push(asNumber);
      for (const input of inputs) {
        const mapping = parsePortMapping(input);
        assert.ok(Number.isInteger(mapping.local) && mapping.local >= 0 && mapping.local <= 65535);
        if (typeof mapping.remote === "number") {
          assert.ok(Number.isInteger(mapping.remote) && mapping.remote >= 1 && mapping.remote <= 65535);
        } else assert.match(mapping.remote, /^[a-z0-9-]{1,15}$/);
        assert.deepEqual(parsePortMapping(formatPortMapping(mapping)), mapping, "round trip");
      }
    },
    typed: [PortMappingError],
    show: (text) => JSON.stringify(text),
  },

  targetParser: {
    input(rng: Prng): string {
      if (rng.chance(0.1)) return new TextDecoder().decode(rng.bytes(rng.int(24)));
      const seeds = [
        "svc/api",
        "deploy/web",
        "statefulset.apps/pg",
        "pod/web-0",
        "web-0",
        "rs/x",
        "services/a.b",
      ];
      const selectors = ["app=db", "app==db,tier!=cache", "env in (a, b),!canary", "x notin (y)", "k", "n>3"];
      const selector = rng.chance(0.5);
      const text = mutateText(rng, rng.pick(selector ? selectors : seeds), [
        "/",
        ",",
        "(",
        ")",
        "=",
        "!",
        " in ",
        ".",
      ]);
      return (selector ? "-l " : "") + text;
    },
    run(input: string): void {
      if (input.startsWith("-l ")) {
        const normalized = parseSelector(input.slice(3));
        assert.equal(parseSelector(normalized), normalized, "a normalized selector parses to itself");
        return;
      }
      const target = parseTarget(input);
      assert.deepEqual(parseTarget(formatTarget(target)), target, "round trip");
    },
    typed: [TargetError, SelectorError],
    show: (text) => JSON.stringify(text),
  },
};
