// Preloaded into a gateway child by bench/memory.ts (`node --expose-gc --import tsx --import ./bench/memory-probe.ts`):
// on the IPC message 'measure' it collects garbage (when --expose-gc is on) and sends process.memoryUsage().
// It changes nothing else in the process.

const gc = (globalThis as { gc?: () => void }).gc;

process.on('message', (message) => {
  if (message !== 'measure') return;
  gc?.();
  // A second collection after a pause, once the weak callbacks and finalizers of the first have run.
  setTimeout(() => {
    gc?.();
    setTimeout(() => process.send?.({ ...process.memoryUsage(), gc: gc !== undefined }), 100);
  }, 200);
});
process.channel?.unref();
