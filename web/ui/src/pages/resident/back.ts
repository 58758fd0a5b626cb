// "Every step can go back": the shell's big back button asks the page first (a page with steps
// of its own goes back one step), then goes to the route's `meta.back`, then home.
import { inject, onBeforeUnmount, provide } from 'vue'

type BackHandler = () => boolean
const KEY = Symbol('resident-back')

export function provideBack(): BackHandler[] {
  const handlers: BackHandler[] = []
  provide(KEY, handlers)
  return handlers
}

/** Let the page handle the back button while it is shown: return true when it went back. */
export function useBack(fn: BackHandler): void {
  const handlers = inject<BackHandler[]>(KEY, [])
  handlers.push(fn)
  onBeforeUnmount(() => {
    const i = handlers.indexOf(fn)
    if (i >= 0) handlers.splice(i, 1)
  })
}
