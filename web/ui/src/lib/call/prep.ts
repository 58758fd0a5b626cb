// The next call made ready ahead (while the point rings, while the clerk waits for the next
// resident): the camera opened and a peer connection built, so both are off the set-up path.
// The next CallSession given this CallPrep takes them.
import { reactive } from 'vue'
import { mark } from './hooks'
import { MEDIA_CONSTRAINTS, problemOf, type MediaProblem } from './media'

interface WarmPeer {
  pc: RTCPeerConnection
  role: 'offer' | 'answer'
  servers: string
  stream: Promise<MediaStream>
  ready: Promise<boolean>
  candidates: (RTCIceCandidateInit | null)[]
}

const urlsOf = (servers: RTCIceServer[]) => JSON.stringify(servers.map((s) => s.urls))

/** TURN credentials carry their expiry ("<unix seconds>:<user>"); ten minutes must be left. */
function fresh(servers: RTCIceServer[]): boolean {
  const soon = Date.now() / 1000 + 600
  return servers.every((s) => !s.username || Number(s.username.split(':')[0]) > soon)
}

export class CallPrep {
  /** What went wrong opening the camera ahead (shown while waiting, so it is fixed before the call). */
  readonly mediaCheck = reactive({ problem: null as MediaProblem | null })
  private preacquired: Promise<MediaStream> | null = null
  private settled = false
  private warmPeer: WarmPeer | null = null

  /** Open the camera ahead of the call, so getUserMedia is off the set-up path. */
  preacquire(): void {
    if (this.preacquired || !navigator.mediaDevices?.getUserMedia) return
    this.settled = false
    const p = navigator.mediaDevices.getUserMedia(MEDIA_CONSTRAINTS)
    this.preacquired = p
    p.then(
      (stream) => {
        this.settled = true
        this.mediaCheck.problem = null
        // The camera was unplugged or taken while we waited: open it again next time.
        for (const t of stream.getTracks()) {
          t.addEventListener('ended', () => this.preacquired === p && this.releasePreacquired())
        }
      },
      (e: unknown) => {
        this.settled = true
        if (this.preacquired === p) this.mediaCheck.problem = problemOf(e)
      },
    )
  }

  /** "Try again" before the call: ask for the camera once more. */
  recheckMedia(): void {
    this.releasePreacquired()
    this.mediaCheck.problem = null
    this.preacquire()
  }

  /** Nobody to talk to after all: close the camera opened ahead (and its warm connection). */
  releasePreacquired(): void {
    this.releaseWarmPeer()
    const p = this.takePreacquired()
    p?.then((s) => s.getTracks().forEach((t) => t.stop())).catch(() => undefined)
  }

  takePreacquired(): Promise<MediaStream> | null {
    const p = this.preacquired
    this.preacquired = null
    return p
  }

  /** True unless a camera request is still open (a permission prompt, a slow device). */
  preacquiredSettled(): boolean {
    return !this.preacquired || this.settled
  }

  /** Build the peer connection of the coming call now, with the camera's tracks on it: as the
   * offerer (the point, while it rings) the offer is made and ICE gathering starts; as the
   * answerer (the clerk, before "call next") the connection only waits for the offer. */
  prewarmPeer(role: 'offer' | 'answer', iceServers: RTCIceServer[] | null | undefined): void {
    if (this.warmPeer || !iceServers || !fresh(iceServers) || typeof RTCPeerConnection === 'undefined') return
    this.preacquire()
    const stream = this.preacquired
    if (!stream) return
    // The answerer gathers a candidate pool ahead, so its answer's candidates go out at once.
    const pc = new RTCPeerConnection({ iceServers, iceCandidatePoolSize: role === 'answer' ? 1 : 0 })
    const w: WarmPeer = { pc, role, servers: urlsOf(iceServers), stream, ready: Promise.resolve(false), candidates: [] }
    pc.onicecandidate = (e) => w.candidates.push(e.candidate ? e.candidate.toJSON() : null)
    w.ready = (async () => {
      const media = await stream
      for (const kind of ['audio', 'video'] as const) {
        const track = media.getTracks().find((t) => t.kind === kind)
        if (track) pc.addTrack(track, media)
        else if (role === 'offer') pc.addTransceiver(kind, { direction: 'recvonly' })
      }
      if (role === 'offer') await pc.setLocalDescription(await pc.createOffer())
      mark('warm')
      return true
    })().catch(() => false)
    this.warmPeer = w
  }

  releaseWarmPeer(): void {
    this.warmPeer?.pc.close()
    this.warmPeer = null
  }

  /** The warm connection, if it suits this call: same role, same ICE servers, same camera. */
  async takeWarmPeer(role: 'offer' | 'answer', config: RTCConfiguration, local: MediaStream | null): Promise<WarmPeer | null> {
    const w = this.warmPeer
    if (!w || w.role !== role) return null
    this.warmPeer = null
    const ok = await w.ready
    const tracks = w.pc.getSenders().map((s) => s.track).filter(Boolean)
    const same = ok && tracks.length > 0 && tracks.every((t) => local?.getTracks().includes(t as MediaStreamTrack))
    if (!same || w.servers !== urlsOf(config.iceServers ?? []) || w.pc.signalingState === 'closed') {
      w.pc.close()
      return null
    }
    try {
      w.pc.setConfiguration({ ...w.pc.getConfiguration(), iceServers: config.iceServers }) // fresher credentials
    } catch {
      /* the ones it was made with are still valid (fresh() checked) */
    }
    return w
  }
}
