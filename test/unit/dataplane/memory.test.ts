/** The DataPlane contract against MemoryDataPlane, on loopback. */
import { MemoryDataPlane } from '../../../src/dataplane/memory.js';
import { dataPlaneContract } from './contract.js';

dataPlaneContract('memory', {
  address: '127.0.0.1',
  async open() {
    const dp = new MemoryDataPlane({ listenAddress: '127.0.0.1', port: 0 });
    await dp.start();
    return dp;
  },
});
