// Jest runs the TypeScript sources directly (swc strips types; TypeScript 7
// has no ts-jest). Tiers are folders, fastest first: domain → store → rpc →
// e2e → clients. One embedded PostgreSQL serves the whole run (globalSetup);
// each test file gets its own database cloned from a migrated template.
export default {
  testEnvironment: "node",
  extensionsToTreatAsEsm: [".ts"],
  transform: {
    "^.+\\.ts$": [
      "@swc/jest",
      { jsc: { parser: { syntax: "typescript" }, target: "es2023" }, module: { type: "es6" } },
    ],
  },
  moduleNameMapper: { "^(\\.{1,2}/.*)\\.js$": "$1" },
  testMatch: ["<rootDir>/test/**/*.test.ts"],
  // Only these folders hold code jest loads: it need not crawl the client
  // toolchains cached in .cache/ and clients/python/.venv.
  roots: ["<rootDir>/test", "<rootDir>/src", "<rootDir>/examples"],
  globalSetup: "<rootDir>/test/support/global-setup.mjs",
  globalTeardown: "<rootDir>/test/support/global-teardown.mjs",
  testTimeout: 60_000,
  maxWorkers: 2,
};
