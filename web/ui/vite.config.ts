import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'

// `npm run dev` proxies the API and the socket to a running `cloudwindow serve`
// (CW_DEV_SERVER, default the local demo server).
const backend = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env.CW_DEV_SERVER ?? 'http://127.0.0.1:8080'

// `--mode e2e` (npm run build:e2e) builds in the hooks the browser tests and the call-setup
// benchmark read (window.__cw); every other build leaves them out.
export default defineConfig(({ mode }) => ({
  plugins: [vue()],
  base: '/',
  define: {
    __TEST_HOOKS__: JSON.stringify(mode === 'e2e'),
  },
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    chunkSizeWarningLimit: 400, // kB; the first page loads index + the shared vendor chunk (~330 kB)
  },
  server: {
    proxy: {
      '/api': backend,
      '/socket.io': { target: backend, ws: true },
    },
  },
}))
