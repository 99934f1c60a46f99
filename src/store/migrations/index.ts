// Every migration, in order. Listed explicitly (not discovered from files) so
// the compiled server finds them wherever it runs. `npm run migration:create`
// writes a new one from the entities; review it and add it here.
import { Migration20261123145256_Initial } from "./Migration20261123145256_Initial.js";

export const MIGRATIONS = [Migration20261123145256_Initial];
