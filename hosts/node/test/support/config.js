// The test configuration: the conformance suite's (cheap argon2, the test audit key).
export const TEST_AUDIT_KEY = '8f1d5c0a3b7e9f2461d8c7b5a3e9f0c2d4b6a8e0f2c4d6b8a0e2f4c6d8b0a2e4';
export const config = {
  rpId: 'localhost',
  rpName: 'twofold test',
  origins: ['http://localhost:8080'],
  auditKeys: [{ id: 'test', secret: TEST_AUDIT_KEY }],
  passwordHash: { mKib: 64, t: 1, p: 1 },
  backupCodeHash: { mKib: 32, t: 1, p: 1 },
};
export const ctx = { ip: '198.51.100.7', userAgent: 'node-test' };
export const password = 'correct horse battery staple';
