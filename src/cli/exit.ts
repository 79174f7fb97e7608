/** A command that ends with a specific exit code after it already said what happened (e.g. `kf exec`). */
export class ExitWith extends Error {
  override name = "ExitWith";
  readonly code: number;

  constructor(code: number) {
    super(`exit ${code}`);
    this.code = code;
  }
}
