// One WebRTC call: local media, a peer connection per other participant (a mesh), signaling
// over the socket following docs/protocol.md ("whoever joins offers"), trickle ICE, ICE restart
// and rejoining after the socket drops.
import { reactive, markRaw } from 'vue'
import { call, getSocket, link, send, SocketError, type CallJoin, type Participant, type RecordingPolicy, type RecordingState } from './socket'
import type { Material } from './api'
import { RecorderLink, type RecorderStatus } from './recorder'

export type MediaProblem =
  | 'NotAllowedError'
  | 'NotFoundError'
  | 'NotReadableError'
  | 'OverconstrainedError'
  | 'SecurityError'
  | 'Unsupported'
  | 'Other'

interface SignalIn {
  call_id: number
  from: number
  kind: 'offer' | 'answer' | 'candidate' | 'end_of_candidates'
  sdp?: string | null
  candidate?: RTCIceCandidateInit | null
  ice_restart?: boolean
}

export interface RemotePeer {
  pid: number
  name: string
  role: string
  stream: MediaStream | null
  ice: string
  dropped: boolean
}

// A peer whose ICE stays "disconnected" this long gets an ICE restart: Chrome reports
// "disconnected" for brief losses that heal on their own within a few seconds.
const DISCONNECTED_GRACE_MS = 4000
// call:stats every few seconds (docs/protocol.md step 5); cheap, and enough for the call log.
const STATS_EVERY_MS = 5000
// The recorder connection starts once the call is set up (first video, or at most this long
// after the offer/answer), so its offer, ICE and second video encoder never slow the set-up.
const RECORDER_AFTER_NEGOTIATION_MS = 3000
// ...and this long after my first video frame: the other side's first frame usually comes
// within a few hundred ms of mine (bench/call_setup.py steps), and the recorder's offer, the
// node's answer and a second video encoder must not compete with it.
const RECORDER_SETTLE_MS = 1000
// A participant alone in the call (the clerk while the point rings) starts it after this long.
const RECORDER_ALONE_MS = 5000
// Restarts of several peer connections at once (a network change) make one new piece.
const RECORDER_RESTART_DEBOUNCE_MS = 1000

class Peer {
  pc: RTCPeerConnection
  pending: RTCIceCandidateInit[] = []
  stream = new MediaStream()
  restartTimer: number | null = null
  constructor(
    public pid: number,
    public offerer: boolean,
    config: RTCConfiguration,
    warm: RTCPeerConnection | null = null,
  ) {
    this.pc = warm ?? new RTCPeerConnection(config)
  }
}

export class CallSession {
  readonly state = reactive({
    callId: 0,
    me: 0,
    caseId: null as number | null,
    ticketId: null as number | null,
    remotes: [] as RemotePeer[],
    local: null as MediaStream | null,
    micOn: true,
    camOn: true,
    mediaProblem: null as MediaProblem | null,
    rejoining: false,
    ended: '' as string,
    connectedOnce: false,
    firstMedia: false,
    // Recording (docs/recording.md): the policy from the join ack, who is being recorded now
    // (from recording:state), why the last recording stopped, and my own recorder connection.
    recording: { enabled: false, required: false },
    recActive: {} as Record<number, boolean>,
    recStopReason: '' as string,
    recHalted: false,
    recorder: 'idle' as RecorderStatus,
    recorderError: '' as string,
  })
  private join: CallJoin
  private peers = new Map<number, Peer>()
  // Candidates relayed ahead of the offer they belong to (the server handles events
  // concurrently, so a candidate may overtake its offer); used when the offer arrives.
  private early = new Map<number, RTCIceCandidateInit[]>()
  private participants = new Map<number, Participant>()
  private offFns: (() => void)[] = []
  private statsTimer: number | null = null
  private firstMediaTimer: number | null = null
  private lastBytes = new Map<string, { bytes: number; at: number }>()
  private reported = new Set<string>()
  private closed = false
  // Signals are handled one at a time, in order, and only once local media is settled: an
  // answer sent before the camera is ready would carry no tracks, and only the offerer may
  // renegotiate.
  private mediaReady: Promise<void> = Promise.resolve()
  private signals: Promise<void> = Promise.resolve()
  private recorder: RecorderLink
  private recorderStarted = false
  private recorderRestart: number | null = null
  private firstMediaSeen: Promise<void>
  private firstMediaNow: () => void = () => undefined

  constructor(join: CallJoin) {
    this.launched = new Promise((resolve) => (this.launch = resolve))
    this.negotiated = new Promise((resolve) => (this.negotiatedNow = resolve))
    this.firstMediaSeen = new Promise((resolve) => (this.firstMediaNow = resolve))
    this.join = join
    this.applyPolicy(join.recording)
    this.recorder = new RecorderLink(
      () => this.callId,
      () => this.config(),
      (status, code) => {
        this.state.recorder = status
        this.state.recorderError = status === 'failed' ? (code ?? '') : ''
      },
    )
    this.state.callId = join.call_id
    this.state.me = join.participant_id
    this.state.caseId = join.case_id
    this.state.ticketId = join.ticket_id
    for (const p of join.participants) this.participants.set(p.id, p)
  }

  get callId(): number {
    return this.join.call_id
  }

  get reconnecting(): boolean {
    if (this.state.ended) return false
    if (!link.connected || !link.online || this.state.rejoining) return true
    return this.state.remotes.some((r) => r.dropped || r.ice === 'disconnected' || r.ice === 'failed')
  }

  /** Resolves once the offers are on their way (or cannot be yet: the camera is still being
   * asked for). Pages switch to the call view after it, so rendering never delays the offer. */
  readonly launched: Promise<void>
  private launch: () => void = () => undefined
  /** Resolves when the first offer/answer exchange is done (or the call is over): reads that
   * can wait (the checklist) start then, so they do not compete with the set-up. */
  readonly negotiated: Promise<void>
  private negotiatedNow: () => void = () => undefined

  /** Get the camera and microphone, then offer to everyone already in the call. */
  async start(): Promise<void> {
    expose(this)
    if (!preacquiredSettled()) this.launch() // a permission prompt: show the call view meanwhile
    try {
      this.mediaReady = this.acquireMedia()
      this.listen()
      await this.mediaReady
      const others = this.join.participants.filter((p) => p.id !== this.join.participant_id)
      await Promise.all(others.map((p) => this.offer(p.id, false, () => this.launch())))
    } finally {
      this.launch()
    }
    this.statsTimer = window.setInterval(() => void this.reportStats(), STATS_EVERY_MS)
    this.firstMediaTimer = window.setInterval(() => void this.checkFirstMedia(), 250)
    void this.startRecorderWhenSetUp()
  }

  // ---- recording

  private async startRecorderWhenSetUp(): Promise<void> {
    if (!this.state.recording.enabled) return
    await Promise.race([this.negotiated, sleep(RECORDER_ALONE_MS)])
    await Promise.race([this.firstMediaSeen, sleep(RECORDER_AFTER_NEGOTIATION_MS)])
    await sleep(RECORDER_SETTLE_MS)
    if (this.closed || this.recorderStarted) return
    this.recorderStarted = true
    if (!link.connected) return // the socket is away: rejoining starts the recorder
    await this.recorder.start(this.state.local)
  }

  /** A new piece of the recording (after a rejoin, an ICE restart, new media). */
  private restartRecorder(): void {
    if (this.closed || !this.state.recording.enabled || this.state.recHalted) return
    if (!this.recorderStarted) return // the first piece is still to come, with these tracks
    if (this.recorderRestart) clearTimeout(this.recorderRestart)
    this.recorderRestart = window.setTimeout(() => {
      this.recorderRestart = null
      if (!this.closed && link.connected) void this.recorder.start(this.state.local)
    }, RECORDER_RESTART_DEBOUNCE_MS)
  }

  private onRecordingState(d: RecordingState): void {
    this.state.recActive = { ...this.state.recActive, [d.participant_id]: d.active }
    if (d.active) {
      this.state.recStopReason = ''
    } else if (d.reason !== 'replaced') {
      this.state.recStopReason = d.reason ?? ''
    }
    if (d.reason === 'stopped_by_clerk') {
      this.state.recHalted = true
      this.recorder.halt()
    } else if (d.participant_id === this.state.me && !d.active && d.reason !== 'replaced') {
      // My piece ended on the server: a recorder error is retried once; the rest is on purpose.
      if (d.reason === 'error') this.recorder.fail('error')
      else this.recorder.end()
    }
  }

  /** The join ack's recording policy. A call a clerk stopped stays stopped: show it as such. */
  private applyPolicy(policy: RecordingPolicy | null | undefined): void {
    const stopped = !!policy?.stopped
    this.state.recording = { enabled: !!policy?.enabled || stopped, required: !!policy?.required }
    if (stopped) {
      this.state.recHalted = true
      this.state.recStopReason = 'stopped_by_clerk'
    }
  }

  /** Recording stops for everyone (only where the item and site do not require it). */
  async stopRecording(): Promise<void> {
    await call('recording:stop', { call_id: this.callId })
  }

  /** A still of a participant's video, taken by the recorder, kept as a material of the case. */
  async capture(pid: number): Promise<Material> {
    return await call<Material>('recorder:snapshot', { call_id: this.callId, participant_id: pid }, 20000)
  }

  /** My recorder connection, for tests. */
  get recorderConnection(): RTCPeerConnection | null {
    return this.recorder.connection
  }

  async acquireMedia(): Promise<void> {
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
    const early = takePreacquired()
    if (early) {
      const stream = await early.catch((e: unknown) => {
        first = e
        return null
      })
      if (stream && stream.getTracks().some((t) => t.readyState === 'live')) {
        this.state.local = markRaw(stream)
        this.state.mediaProblem = null
        this.attachLocalTracks()
        mark('media')
        return
      }
    }
    for (const c of attempts) {
      try {
        const stream = await navigator.mediaDevices.getUserMedia(c)
        this.state.local = markRaw(stream)
        this.state.mediaProblem = first ? problemOf(first) : null
        if (!first) mediaCheck.problem = null
        this.attachLocalTracks()
        return
      } catch (e) {
        first ??= e
        // Permission refused or blocked: asking again with fewer devices will not help.
        if (e instanceof DOMException && (e.name === 'NotAllowedError' || e.name === 'SecurityError')) break
      }
    }
    this.state.mediaProblem = problemOf(first)
  }

  /** After "try again": send the new tracks on every open connection. */
  async retryMedia(): Promise<void> {
    await this.acquireMedia()
    for (const peer of this.peers.values()) if (peer.offerer) await this.sendOffer(peer, false)
    this.restartRecorder() // the recorder gets the new tracks too
  }

  private attachLocalTracks(): void {
    const local = this.state.local
    if (!local) return
    for (const peer of this.peers.values()) {
      for (const track of local.getTracks()) {
        const t = peer.pc.getTransceivers().find((x) => x.receiver.track.kind === track.kind)
        if (t) {
          void t.sender.replaceTrack(track)
          if (t.direction === 'recvonly') t.direction = 'sendrecv'
        } else peer.pc.addTrack(track, local)
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

  /** A JPEG of what my camera shows now (for photographing a document during the call). */
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

  async leave(): Promise<void> {
    if (this.closed) return
    try {
      await call('call:leave', { call_id: this.callId }, 5000)
    } catch {
      /* the call may already be over */
    }
    this.close('left')
  }

  close(reason: string): void {
    if (this.closed) return
    this.closed = true
    this.negotiatedNow()
    this.state.ended = reason
    for (const off of this.offFns) off()
    if (this.statsTimer) clearInterval(this.statsTimer)
    if (this.firstMediaTimer) clearInterval(this.firstMediaTimer)
    if (this.recorderRestart) clearTimeout(this.recorderRestart)
    this.recorder.close()
    this.firstMediaNow()
    for (const peer of this.peers.values()) this.dropPeer(peer.pid)
    this.state.local?.getTracks().forEach((t) => t.stop())
    this.state.local = null
    if (window.__cw?.session === this) window.__cw.session = null
  }

  // ---- signaling

  private listen(): void {
    const s = getSocket()
    const on = <T>(event: string, fn: (d: T) => void) => {
      const h = (d: T & { call_id?: number }) => {
        if (d?.call_id === this.callId) fn(d)
      }
      s.on(event, h)
      this.offFns.push(() => s.off(event, h))
    }
    on<SignalIn>('call:signal', (d) => {
      if (d.kind === 'offer') mark('offer_arrived')
      this.signals = this.signals
        .then(() => this.mediaReady)
        .then(() => this.onSignal(d))
        .catch(() => undefined)
    })
    on<{ participant: Participant; rejoined?: boolean }>('call:participant_joined', (d) => {
      if (d.participant.id === this.state.me) return
      this.participants.set(d.participant.id, d.participant)
      const r = this.remote(d.participant.id)
      r.dropped = false
      // The joiner offers; we only wait. A rejoiner's offer replaces or restarts our connection.
    })
    on<{ participant_id: number; reconnecting: boolean }>('call:participant_left', (d) => {
      if (d.participant_id === this.state.me) return
      if (d.reconnecting) {
        this.remote(d.participant_id).dropped = true
      } else {
        this.participants.delete(d.participant_id)
        this.dropPeer(d.participant_id)
      }
    })
    on<{ reason: string }>('call:ended', (d) => this.close(d.reason))
    on<RecordingState>('recording:state', (d) => this.onRecordingState(d))
    // Only later reconnections: the socket is already up when the call starts.
    const back = () => void this.rejoin()
    s.on('connect', back)
    this.offFns.push(() => s.off('connect', back))
    const online = () => this.restartAll()
    window.addEventListener('online', online)
    this.offFns.push(() => window.removeEventListener('online', online))
  }

  /** The socket came back: rejoin with the resume token, then offer again with an ICE restart. */
  private async rejoin(): Promise<void> {
    if (this.closed) return
    this.state.rejoining = true
    let rejoined = false
    try {
      const join = await call<CallJoin>('call:rejoin', {
        call_id: this.callId,
        resume_token: this.join.resume_token,
      })
      this.join = { ...join, resume_token: join.resume_token || this.join.resume_token }
      rejoined = true
      if (join.recording) this.applyPolicy(join.recording)
      this.state.me = join.participant_id
      for (const p of join.participants) this.participants.set(p.id, p)
      for (const p of join.participants) {
        if (p.id === join.participant_id || !p.connected) continue
        await this.offer(p.id, true)
      }
    } catch (e) {
      if (e instanceof SocketError && (e.code === 'call.ended' || e.code === 'call.resume')) {
        this.close(e.code)
      }
    } finally {
      this.state.rejoining = false
      // Back in the call: the recorder gets a new offer, a new piece of my recording
      // (docs/recording.md), even if an offer to a peer went wrong.
      if (rejoined) this.restartRecorder()
    }
  }

  private config(): RTCConfiguration {
    return { iceServers: this.join.ice_servers ?? [] }
  }

  private newPeer(pid: number, offerer: boolean, warm: RTCPeerConnection | null = null): Peer {
    this.dropPeer(pid)
    const peer = new Peer(pid, offerer, this.config(), warm)
    peer.pending.push(...(this.early.get(pid) ?? []))
    this.early.delete(pid)
    this.peers.set(pid, peer)
    const pc = peer.pc
    const remote = this.remote(pid)
    remote.stream = markRaw(peer.stream)
    pc.onicecandidate = (e) => this.sendCandidate(pid, e.candidate ? e.candidate.toJSON() : null)
    pc.ontrack = (e) => {
      if (!peer.stream.getTracks().includes(e.track)) peer.stream.addTrack(e.track)
      // A new MediaStream object makes <video> pick the track up again after renegotiation.
      remote.stream = markRaw(new MediaStream(peer.stream.getTracks()))
    }
    pc.oniceconnectionstatechange = () => {
      remote.ice = pc.iceConnectionState
      if (pc.iceConnectionState === 'failed') this.restartIce(peer)
      if (pc.iceConnectionState === 'disconnected' && peer.restartTimer === null) {
        peer.restartTimer = window.setTimeout(() => {
          peer.restartTimer = null
          if (pc.iceConnectionState === 'disconnected') this.restartIce(peer)
        }, DISCONNECTED_GRACE_MS)
      }
    }
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === 'connected') {
        mark('connected')
        remote.ice = 'connected'
        this.reportOnce('connected')
      }
    }
    return peer
  }

  private dropPeer(pid: number): void {
    const peer = this.peers.get(pid)
    if (peer) {
      if (peer.restartTimer) clearTimeout(peer.restartTimer)
      peer.pc.close()
      this.peers.delete(pid)
    }
    if (!this.participants.has(pid) || this.closed) {
      this.state.remotes = this.state.remotes.filter((r) => r.pid !== pid)
    }
  }

  private remote(pid: number): RemotePeer {
    let r = this.state.remotes.find((x) => x.pid === pid)
    if (!r) {
      const p = this.participants.get(pid)
      this.state.remotes.push({
        pid,
        name: p?.display_name ?? '',
        role: p?.role ?? '',
        stream: null,
        ice: 'new',
        dropped: false,
      })
      r = this.state.remotes[this.state.remotes.length - 1]
    } else {
      const p = this.participants.get(pid)
      if (p) {
        r.name = p.display_name
        r.role = p.role
      }
    }
    return r
  }

  /** Offer to a participant: on the existing connection (ICE restart) or a new one. */
  private async offer(pid: number, iceRestart: boolean, sent?: () => void): Promise<void> {
    let peer = this.peers.get(pid)
    const usable = peer && !['closed', 'failed'].includes(peer.pc.connectionState) && peer.offerer
    if (!peer || !usable) {
      const warm = iceRestart ? null : await takeWarmPeer('offer', this.config(), this.state.local)
      if (warm?.pc.localDescription) {
        // Made while the tablet rang: the offer and the first candidates are ready to go.
        peer = this.newPeer(pid, true, warm.pc)
        const sdp = warm.pc.localDescription.sdp
        mark('offer_sent')
        const acked = this.signal(pid, 'offer', sdp, false)
        for (const c of warm.candidates) this.sendCandidate(pid, c)
        sent?.()
        await acked
        return
      }
      peer = this.newPeer(pid, true)
      const local = this.state.local
      for (const kind of ['audio', 'video'] as const) {
        const track = local?.getTracks().find((t) => t.kind === kind)
        if (track && local) peer.pc.addTrack(track, local)
        else peer.pc.addTransceiver(kind, { direction: 'recvonly' })
      }
    }
    await this.sendOffer(peer, iceRestart, sent)
  }

  private async sendOffer(peer: Peer, iceRestart: boolean, sent?: () => void): Promise<void> {
    const pc = peer.pc
    if (pc.signalingState !== 'stable') return
    const offer = await pc.createOffer({ iceRestart })
    await pc.setLocalDescription(offer)
    mark('offer_sent')
    const acked = this.signal(peer.pid, 'offer', pc.localDescription?.sdp ?? offer.sdp ?? '', iceRestart)
    sent?.()
    await acked
  }

  private sendCandidate(to: number, c: RTCIceCandidateInit | null): void {
    send('call:signal', { call_id: this.callId, to, kind: c ? 'candidate' : 'end_of_candidates', candidate: c })
  }

  private restartIce(peer: Peer): void {
    if (this.closed || !peer.offerer || !link.connected) return
    void this.sendOffer(peer, true)
    this.restartRecorder() // an ICE failure: the recorder gets a new offer too
  }

  private restartAll(): void {
    for (const peer of this.peers.values()) this.restartIce(peer)
  }

  private async signal(to: number, kind: 'offer' | 'answer', sdp: string, iceRestart = false): Promise<void> {
    try {
      await call('call:signal', { call_id: this.callId, to, kind, sdp, ice_restart: iceRestart })
      mark(`${kind}_acked`)
    } catch {
      /* the peer left; its participant_left event cleans up */
    }
  }

  private async onSignal(d: SignalIn): Promise<void> {
    if (this.closed) return
    if (d.kind === 'offer') {
      let peer = this.peers.get(d.from)
      const reuse =
        peer && !peer.offerer && peer.pc.connectionState !== 'closed' && peer.pc.signalingState === 'stable'
      if (!peer || !reuse) {
        const warm = peer ? null : await takeWarmPeer('answer', this.config(), this.state.local)
        peer = this.newPeer(d.from, false, warm?.pc ?? null)
      }
      try {
        await peer.pc.setRemoteDescription({ type: 'offer', sdp: d.sdp ?? '' })
      } catch {
        // The rejoiner built a new connection: start over with a fresh one.
        peer = this.newPeer(d.from, false)
        await peer.pc.setRemoteDescription({ type: 'offer', sdp: d.sdp ?? '' })
      }
      mark('remote_set')
      const local = this.state.local
      if (local) {
        const sending = peer.pc.getSenders().map((s) => s.track)
        for (const track of local.getTracks()) if (!sending.includes(track)) peer.pc.addTrack(track, local)
      }
      await this.flushCandidates(peer)
      const answer = await peer.pc.createAnswer()
      await peer.pc.setLocalDescription(answer)
      mark('answer_sent')
      // After the server acked the relay: our next reads must not queue behind it.
      await this.signal(d.from, 'answer', peer.pc.localDescription?.sdp ?? answer.sdp ?? '')
      this.negotiatedNow()
    } else if (d.kind === 'answer') {
      const peer = this.peers.get(d.from)
      if (!peer || peer.pc.signalingState !== 'have-local-offer') return
      await peer.pc.setRemoteDescription({ type: 'answer', sdp: d.sdp ?? '' })
      mark('answer_set')
      this.negotiatedNow()
      await this.flushCandidates(peer)
    } else if (d.kind === 'candidate' && d.candidate) {
      const peer = this.peers.get(d.from)
      if (!peer) {
        this.early.set(d.from, [...(this.early.get(d.from) ?? []), d.candidate])
        return
      }
      if (!peer.pc.remoteDescription) peer.pending.push(d.candidate)
      else await peer.pc.addIceCandidate(d.candidate).catch(() => undefined)
    }
  }

  private async flushCandidates(peer: Peer): Promise<void> {
    const pending = peer.pending.splice(0)
    for (const c of pending) await peer.pc.addIceCandidate(c).catch(() => undefined)
  }

  // ---- reports

  private reportOnce(state: 'connected' | 'first_media'): void {
    if (this.reported.has(state)) return
    this.reported.add(state)
    if (state === 'connected') this.state.connectedOnce = true
    send('call:state', { call_id: this.callId, state })
  }

  /** Frames decoded from every remote peer that sends video. */
  async framesDecoded(): Promise<number[]> {
    const out: number[] = []
    for (const peer of this.peers.values()) {
      let frames = 0
      const stats = await peer.pc.getStats()
      stats.forEach((r) => {
        if (r.type === 'inbound-rtp' && r.kind === 'video') frames += r.framesDecoded ?? 0
      })
      out.push(frames)
    }
    return out
  }

  private async checkFirstMedia(): Promise<void> {
    const frames = await this.framesDecoded()
    if (frames.some((f) => f > 0)) {
      if (!this.state.firstMedia) {
        this.state.firstMedia = true
        if (window.__cw && window.__cw.firstFrameAt === null) window.__cw.firstFrameAt = performance.now()
        mark('first_frame')
        this.reportOnce('first_media')
        this.firstMediaNow()
      }
      if (this.firstMediaTimer) clearInterval(this.firstMediaTimer)
      this.firstMediaTimer = null
    }
  }

  private async reportStats(): Promise<void> {
    for (const peer of this.peers.values()) {
      const stats = await peer.pc.getStats()
      const out: Record<string, number | string | null> = { call_id: this.callId }
      let lost = 0
      let received = 0
      let localCandidateId = ''
      const candidates = new Map<string, string>()
      stats.forEach((r) => {
        if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') {
          if (r.currentRoundTripTime !== undefined) out.rtt_ms = r.currentRoundTripTime * 1000
          localCandidateId = r.localCandidateId
        }
        if (r.type === 'local-candidate') candidates.set(r.id, r.candidateType)
        if (r.type === 'inbound-rtp') {
          lost += r.packetsLost ?? 0
          received += r.packetsReceived ?? 0
          if (r.kind === 'video') {
            out.frames_decoded = r.framesDecoded ?? 0
            if (r.framesPerSecond !== undefined) out.fps = r.framesPerSecond
            if (r.jitter !== undefined) out.jitter_ms = r.jitter * 1000
            const prev = this.lastBytes.get(`${peer.pid}`)
            const now = r.timestamp as number
            if (prev && now > prev.at) {
              out.bitrate_kbps = Math.max(0, ((r.bytesReceived - prev.bytes) * 8) / (now - prev.at))
            }
            this.lastBytes.set(`${peer.pid}`, { bytes: r.bytesReceived ?? 0, at: now })
          }
        }
      })
      if (received + lost > 0) out.packet_loss_pct = (100 * Math.max(0, lost)) / (received + Math.max(0, lost))
      const type = candidates.get(localCandidateId)
      if (type && ['host', 'srflx', 'prflx', 'relay'].includes(type)) out.candidate_type = type
      if (peer.pc.connectionState === 'connected') send('call:stats', out)
    }
  }
}

const MEDIA_CONSTRAINTS: MediaStreamConstraints = {
  video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 15 } },
  audio: { echoCancellation: true, noiseSuppression: true },
}
let preacquired: Promise<MediaStream> | null = null
let settled = false
/** What went wrong opening the camera ahead (shown while waiting, so it is fixed before the call). */
export const mediaCheck = reactive({ problem: null as MediaProblem | null })

/** Open the camera ahead of the call (while the point rings, while the clerk waits for the next
 * resident), so getUserMedia is off the set-up path. The next CallSession takes the stream. */
export function preacquire(): void {
  if (preacquired || !navigator.mediaDevices?.getUserMedia) return
  settled = false
  const p = navigator.mediaDevices.getUserMedia(MEDIA_CONSTRAINTS)
  preacquired = p
  p.then(
    (stream) => {
      settled = true
      mediaCheck.problem = null
      // The camera was unplugged or taken while we waited: open it again next time.
      for (const t of stream.getTracks()) t.addEventListener('ended', () => preacquired === p && releasePreacquired())
    },
    (e: unknown) => {
      settled = true
      if (preacquired === p) mediaCheck.problem = problemOf(e)
    },
  )
}

/** "Try again" before the call: ask for the camera once more. */
export function recheckMedia(): void {
  releasePreacquired()
  mediaCheck.problem = null
  preacquire()
}

/** Nobody to talk to after all: close the camera opened ahead (and its warm connection). */
export function releasePreacquired(): void {
  releaseWarmPeer()
  const p = takePreacquired()
  p?.then((s) => s.getTracks().forEach((t) => t.stop())).catch(() => undefined)
}

function takePreacquired(): Promise<MediaStream> | null {
  const p = preacquired
  preacquired = null
  return p
}

/** True unless a camera request is still open (a permission prompt, a slow device). */
function preacquiredSettled(): boolean {
  return !preacquired || settled
}

// ---- a peer connection made ahead of the call

interface WarmPeer {
  pc: RTCPeerConnection
  role: 'offer' | 'answer'
  servers: string
  stream: Promise<MediaStream>
  ready: Promise<boolean>
  candidates: (RTCIceCandidateInit | null)[]
}
let warmPeer: WarmPeer | null = null

const urlsOf = (servers: RTCIceServer[]) => JSON.stringify(servers.map((s) => s.urls))

/** TURN credentials carry their expiry ("<unix seconds>:<user>"); ten minutes must be left. */
function fresh(servers: RTCIceServer[]): boolean {
  const soon = Date.now() / 1000 + 600
  return servers.every((s) => !s.username || Number(s.username.split(':')[0]) > soon)
}

/** Build the peer connection of the coming call now, with the camera's tracks on it: as the
 * offerer (the point, while it rings) the offer is made and ICE gathering starts; as the
 * answerer (the clerk, before "call next") the connection only waits for the offer. */
export function prewarmPeer(role: 'offer' | 'answer', iceServers: RTCIceServer[] | null | undefined): void {
  if (warmPeer || !iceServers || !fresh(iceServers) || typeof RTCPeerConnection === 'undefined') return
  preacquire()
  const stream = preacquired
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
  warmPeer = w
}

export function releaseWarmPeer(): void {
  warmPeer?.pc.close()
  warmPeer = null
}

/** The warm connection, if it suits this call: same role, same ICE servers, same camera. */
async function takeWarmPeer(
  role: 'offer' | 'answer',
  config: RTCConfiguration,
  local: MediaStream | null,
): Promise<WarmPeer | null> {
  const w = warmPeer
  if (!w || w.role !== role) return null
  warmPeer = null
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

const sleep = (ms: number) => new Promise<void>((resolve) => window.setTimeout(resolve, ms))

function problemOf(e: unknown): MediaProblem {
  const name = e instanceof DOMException || e instanceof Error ? e.name : ''
  if (name === 'PermissionDeniedError') return 'NotAllowedError'
  if (name === 'DevicesNotFoundError') return 'NotFoundError'
  if (name === 'TrackStartError') return 'NotReadableError'
  const known: MediaProblem[] = ['NotAllowedError', 'NotFoundError', 'NotReadableError', 'OverconstrainedError', 'SecurityError']
  return (known as string[]).includes(name) ? (name as MediaProblem) : 'Other'
}

// ---- a handle for tests and benchmarks (tests/e2e, bench/call_setup.py)

declare global {
  interface Window {
    __cw?: {
      session: CallSession | null
      pcs: () => RTCPeerConnection[]
      firstFrameAt: number | null
      callNextAt: number | null
      marks: Record<string, number>
    }
  }
}

/** Wall-clock marks of the set-up steps, read by bench/call_setup.py. */
export function mark(name: string): void {
  window.__cw ??= { session: null, pcs: () => [], firstFrameAt: null, callNextAt: null, marks: {} }
  window.__cw.marks[name] = Date.now()
}

function expose(s: CallSession): void {
  window.__cw ??= { session: null, pcs: () => [], firstFrameAt: null, callNextAt: null, marks: {} }
  window.__cw.session = s
  window.__cw.firstFrameAt = null
  window.__cw.pcs = () => [...(window.__cw?.session as unknown as { peers: Map<number, Peer> })?.peers.values() ?? []].map((p) => p.pc)
}
