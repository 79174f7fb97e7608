/** kf's command tree run without main.ts's quick paths: what those paths must answer exactly like. */

import { main } from "../program.ts";

Deno.exit(await main(Deno.args));
