/** kf's version, alone in a module so that `kf --version` loads nothing else (see main.ts). */

export const VERSION = "0.1.0";
