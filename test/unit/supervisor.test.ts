import assert from 'node:assert/strict';
import { test } from 'node:test';
import { workerExecArgv } from '../../src/supervisor.js';

test('worker processes get a larger young generation unless the operator sized it', () => {
  assert.deepEqual(workerExecArgv(['--import', 'tsx'], 64), ['--import', 'tsx', '--max-semi-space-size=64']);
  assert.deepEqual(workerExecArgv(['--max-semi-space-size=8'], 64), ['--max-semi-space-size=8']);
  assert.deepEqual(workerExecArgv(['--import', 'tsx'], 0), ['--import', 'tsx']);
});
