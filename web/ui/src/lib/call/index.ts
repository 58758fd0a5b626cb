// A WebRTC call and what the pages make ready ahead of one.
export { CallSession } from './session'
export { CallPrep } from './prep'
export { mark } from './hooks'
export type { RemotePeer } from './context'
export type { MediaProblem } from './media'
