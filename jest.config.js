/** Two projects: unit tests (pure logic, the store, parsers, the native addon) and
 * integration tests (a real containerd, runc and CRIU, started by the tests). */
// Type checking is tsc's job (make build); ts-jest only transpiles (isolatedModules in tsconfig).
const tsJest = ['ts-jest', { tsconfig: 'tsconfig.json' }];
module.exports = {
  // jest reads testTimeout only here, not per project.
  testTimeout: 180000,
  projects: [
    {
      displayName: 'unit',
      testEnvironment: 'node',
      transform: { '^.+\\.ts$': tsJest },
      testMatch: ['<rootDir>/shim/**/*.test.ts', '<rootDir>/native/**/*.test.ts', '<rootDir>/oci-hooks/**/*.test.ts'],
    },
    {
      displayName: 'integration',
      testEnvironment: 'node',
      transform: { '^.+\\.ts$': tsJest },
      testMatch: ['<rootDir>/integration/**/*.test.ts'],
    },
  ],
};
