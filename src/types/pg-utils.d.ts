// pg's own helpers (pg/lib/utils.js), which pg's Query uses to turn parameters into wire values.
declare module "pg/lib/utils.js" {
  const utils: { prepareValue(value: unknown): unknown };
  export default utils;
}
