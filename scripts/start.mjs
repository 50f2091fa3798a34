// `npm start`: the compiled server (dist/, from `npm run build`) when it is there and newer than
// every source file; otherwise the TypeScript sources through tsx, so a fresh clone, or a checkout
// edited since its last build, still starts. Worker processes fork this same file and decide alike.
import { distIsFresh } from './dist-fresh.mjs';

if (distIsFresh()) {
  await import('../dist/src/main.js');
} else {
  // Only when there is no fresh build: TypeScript is compiled in memory at run time (slower start).
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/main.ts');
}
