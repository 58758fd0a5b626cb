/// <reference types="vite/client" />
/** True in `vite build --mode e2e` only: the test hooks are built in. */
declare const __TEST_HOOKS__: boolean
declare module '*.vue' {
  import type { DefineComponent } from 'vue'
  const component: DefineComponent<object, object, unknown>
  export default component
}
