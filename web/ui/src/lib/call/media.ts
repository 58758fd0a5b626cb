// My camera and microphone in the call: getUserMedia with fallbacks, the tracks on every
// connection, mute and camera off, and a still of what the camera shows.
import { markRaw } from 'vue'
import type { CallState } from './context'
import { mark } from './hooks'
import type { CallPrep } from './prep'

export type MediaProblem =
  | 'NotAllowedError'
  | 'NotFoundError'
  | 'NotReadableError'
  | 'OverconstrainedError'
  | 'SecurityError'
  | 'Unsupported'
  | 'Other'

export const MEDIA_CONSTRAINTS: MediaStreamConstraints = {
  video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 15 } },
  audio: { echoCancellation: true, noiseSuppression: true },
}

export function problemOf(e: unknown): MediaProblem {
  const name = e instanceof DOMException || e instanceof Error ? e.name : ''
  if (name === 'PermissionDeniedError') return 'NotAllowedError'
  if (name === 'DevicesNotFoundError') return 'NotFoundError'
  if (name === 'TrackStartError') return 'NotReadableError'
  const known: MediaProblem[] = ['NotAllowedError', 'NotFoundError', 'NotReadableError', 'OverconstrainedError', 'SecurityError']
  return (known as string[]).includes(name) ? (name as MediaProblem) : 'Other'
}

export class LocalMedia {
  constructor(
    private state: CallState,
    private prep: CallPrep | null,
    private connections: () => Iterable<RTCPeerConnection>,
  ) {}

  /** The camera opened ahead if it is still live, else ask with fewer devices each time. */
  async acquire(): Promise<void> {
    if (!navigator.mediaDevices?.getUserMedia) {
      this.state.mediaProblem = window.isSecureContext ? 'Unsupported' : 'SecurityError'
      return
    }
    const attempts: MediaStreamConstraints[] = [
      MEDIA_CONSTRAINTS,
      { video: MEDIA_CONSTRAINTS.video },
      { audio: true },
    ]
    let first: unknown = null
    const early = this.prep?.takePreacquired() ?? null
    if (early) {
      const stream = await early.catch((e: unknown) => {
        first = e
        return null
      })
      if (stream && stream.getTracks().some((t) => t.readyState === 'live')) {
        this.state.local = markRaw(stream)
        this.state.mediaProblem = null
        this.attach()
        mark('media')
        return
      }
    }
    for (const c of attempts) {
      try {
        const stream = await navigator.mediaDevices.getUserMedia(c)
        this.state.local = markRaw(stream)
        this.state.mediaProblem = first ? problemOf(first) : null
        if (!first && this.prep) this.prep.mediaCheck.problem = null
        this.attach()
        return
      } catch (e) {
        first ??= e
        // Permission refused or blocked: asking again with fewer devices will not help.
        if (e instanceof DOMException && (e.name === 'NotAllowedError' || e.name === 'SecurityError')) break
      }
    }
    this.state.mediaProblem = problemOf(first)
  }

  /** Put my tracks on every open connection, in place of the ones it sends now. */
  attach(): void {
    const local = this.state.local
    if (!local) return
    for (const pc of this.connections()) {
      for (const track of local.getTracks()) {
        const t = pc.getTransceivers().find((x) => x.receiver.track.kind === track.kind)
        if (t) {
          void t.sender.replaceTrack(track)
          if (t.direction === 'recvonly') t.direction = 'sendrecv'
        } else pc.addTrack(track, local)
      }
    }
  }

  toggleMic(): void {
    this.state.micOn = !this.state.micOn
    this.state.local?.getAudioTracks().forEach((t) => (t.enabled = this.state.micOn))
  }

  toggleCam(): void {
    this.state.camOn = !this.state.camOn
    this.state.local?.getVideoTracks().forEach((t) => (t.enabled = this.state.camOn))
  }

  /** A JPEG of what my camera shows now. */
  async snapshot(): Promise<Blob | null> {
    const track = this.state.local?.getVideoTracks()[0]
    if (!track) return null
    const video = document.createElement('video')
    video.muted = true
    video.srcObject = new MediaStream([track])
    await video.play()
    const canvas = document.createElement('canvas')
    canvas.width = video.videoWidth
    canvas.height = video.videoHeight
    canvas.getContext('2d')?.drawImage(video, 0, 0)
    video.srcObject = null
    return await new Promise((resolve) => canvas.toBlob(resolve, 'image/jpeg', 0.92))
  }

  stop(): void {
    this.state.local?.getTracks().forEach((t) => t.stop())
    this.state.local = null
  }
}
