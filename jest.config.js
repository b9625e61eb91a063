/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/src', '<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.(t|j)sx?$': ['@swc/jest', { jsc: { parser: { syntax: 'typescript', decorators: true }, transform: { legacyDecorator: true, decoratorMetadata: true } } }] },
  transformIgnorePatterns: ['/node_modules/(?!jose|oauth4webapi|@electric-sql|pglite-prisma-adapter)'],
  testTimeout: 60000,
  maxWorkers: 2,
};
