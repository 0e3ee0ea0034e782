import { defineConfig } from 'vitest/config';
import react from '@vitejs/plugin-react';
import tailwindcss from '@tailwindcss/vite';

// The build goes to dist/app, which the Go package beside this file embeds
// (web.go); dist/placeholder is the committed page of an unbuilt checkout.
export default defineConfig({
  plugins: [react(), tailwindcss()],
  build: {
    outDir: 'dist/app',
    emptyOutDir: true,
    // The charts are the bulk of the code: their own chunk caches across releases.
    rollupOptions: { output: { manualChunks: { charts: ['recharts'], react: ['react', 'react-dom', '@tanstack/react-query'] } } },
  },
  // `npm run dev` against a running `uvr run` on the default address.
  server: { proxy: { '/api': 'http://127.0.0.1:8000', '/metrics': 'http://127.0.0.1:8000' } },
  test: { include: ['src/**/*.test.ts'], environment: 'node' },
});
