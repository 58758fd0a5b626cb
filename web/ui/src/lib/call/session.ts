// One WebRTC call: signaling over the socket following docs/protocol.md ("whoever joins
// offers"), trickle ICE, joining and leaving. Media, peers, stats, recording and rejoining
// are the modules beside this one.
import { call, getSocket, link, send, type CallJoin, type Participant, type RecordingState } from '../socket'
import type { Material } from '../api'
import { CallContext, type CallState, type SignalIn } from './context'
import { exposeSession, mark, sessionClosed } from './hooks'
import { LocalMedia } from './media'
import { PeerMesh, type Peer } from './peers'
import type { CallPrep } from './prep'
import { CallRecording } from './recording'
import { rejoin } from './resume'
import { CallStats } from './stats'

export class CallSession {
  readonly state: CallState
  /** Resolves once the offers are on their way (or cannot be yet: the camera is still being
   * asked for). Pages switch to the call view after it, so rendering never delays the offer. */
  readonly launched: Promise<void>
  /** Resolves when the first offer/answer exchange is done (or the call is over): reads that
   * can wait (the checklist) start then, so they do not compete with the set-up. */
  readonly negotiated: Promise<void>
  private launch: () => void = () => undefined
  private negotiatedNow: () => void = () => undefined
  private firstMediaSeen: Promise<void>
  private firstMediaNow: () => void = () => undefined
  private ctx: CallContext
  private mesh: PeerMesh
  private media: LocalMedia
  private stats: CallStats
  private recording: CallRecording
  private offFns: (() => void)[] = []
  // Signals are handled one at a time, in order, and only once local media is settled: an
  // answer sent before the camera is ready would carry no tracks, and only the offerer may
  // renegotiate.
  private mediaReady: Promise<void> = Promise.resolve()
  private signals: Promise<void> = Promise.resolve()

  /** `prep`: the camera and connection made ready ahead, if the page made them. */
  constructor(
    join: CallJoin,
    private prep: CallPrep | null = null,
  ) {
    this.launched = new Promise((resolve) => (this.launch = resolve))
    this.negotiated = new Promise((resolve) => (this.negotiatedNow = resolve))
    this.firstMediaSeen = new Promise((resolve) => (this.firstMediaNow = resolve))
    this.ctx = new CallContext(join)
    this.state = this.ctx.state
    this.recording = new CallRecording(this.ctx)
    this.mesh = new PeerMesh(this.ctx, {
      candidate: (to, c) => this.sendCandidate(to, c),
      restartIce: (peer) => this.restartIce(peer),
      connected: () => this.stats.reportOnce('connected'),
    })
    this.media = new LocalMedia(this.state, prep, () => this.mesh.connections())
    this.stats = new CallStats(this.ctx, this.mesh, () => this.firstMediaNow())
  }

  get callId(): number {
    return this.ctx.callId
  }

  get reconnecting(): boolean {
    if (this.state.ended) return false
    if (!link.connected || !link.online || this.state.rejoining) return true
    return this.state.remotes.some((r) => r.dropped || r.ice === 'disconnected' || r.ice === 'failed')
  }

  /** Get the camera and microphone, then offer to everyone already in the call. */
  async start(): Promise<void> {
    exposeSession(this)
    // A permission prompt: show the call view meanwhile.
    if (this.prep && !this.prep.preacquiredSettled()) this.launch()
    try {
      this.mediaReady = this.media.acquire()
      this.listen()
      await this.mediaReady
      const join = this.ctx.join
      const others = join.participants.filter((p) => p.id !== join.participant_id)
      await Promise.all(others.map((p) => this.offer(p.id, false, () => this.launch())))
    } finally {
      this.launch()
    }
    this.stats.start()
    void this.recording.startWhenSetUp(this.negotiated, this.firstMediaSeen)
  }

  // ---- media and recording

  async acquireMedia(): Promise<void> {
    await this.media.acquire()
  }

  /** After "try again": send the new tracks on every open connection. */
  async retryMedia(): Promise<void> {
    await this.media.acquire()
    for (const peer of this.mesh.all()) if (peer.offerer) await this.sendOffer(peer, false)
    this.recording.restart() // the recorder gets the new tracks too
  }

  toggleMic(): void {
    this.media.toggleMic()
  }

  toggleCam(): void {
    this.media.toggleCam()
  }

  /** A JPEG of what my camera shows now (for photographing a document during the call). */
  async snapshot(): Promise<Blob | null> {
    return await this.media.snapshot()
  }

  /** Recording stops for everyone (only where the item and site do not require it). */
  async stopRecording(): Promise<void> {
    await this.recording.stop()
  }

  /** A still of a participant's video, taken by the recorder, kept as a material of the case. */
  async capture(pid: number): Promise<Material> {
    return await this.recording.capture(pid)
  }

  /** My recorder connection, for tests. */
  get recorderConnection(): RTCPeerConnection | null {
    return this.recording.connection
  }

  /** Frames decoded from every remote peer that sends video. */
  async framesDecoded(): Promise<number[]> {
    return await this.stats.framesDecoded()
  }

  /** The open connections to the other participants. */
  peerConnections(): RTCPeerConnection[] {
    return this.mesh.connections()
  }

  // ---- joining and leaving

  async leave(): Promise<void> {
    if (this.ctx.closed) return
    try {
      await call('call:leave', { call_id: this.callId }, 5000)
    } catch {
      /* the call may already be over */
    }
    this.close('left')
  }

  close(reason: string): void {
    if (this.ctx.closed) return
    this.ctx.closed = true
    this.negotiatedNow()
    this.state.ended = reason
    for (const off of this.offFns) off()
    this.stats.stop()
    this.recording.close()
    this.firstMediaNow()
    this.mesh.dropAll()
    this.media.stop()
    sessionClosed(this)
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
      this.ctx.participants.set(d.participant.id, d.participant)
      const r = this.mesh.remote(d.participant.id)
      r.dropped = false
      // The joiner offers; we only wait. A rejoiner's offer replaces or restarts our connection.
    })
    on<{ participant_id: number; reconnecting: boolean }>('call:participant_left', (d) => {
      if (d.participant_id === this.state.me) return
      if (d.reconnecting) {
        this.mesh.remote(d.participant_id).dropped = true
      } else {
        this.ctx.participants.delete(d.participant_id)
        this.mesh.drop(d.participant_id)
      }
    })
    on<{ reason: string }>('call:ended', (d) => this.close(d.reason))
    on<RecordingState>('recording:state', (d) => this.recording.onState(d))
    // Only later reconnections: the socket is already up when the call starts.
    const back = () =>
      void rejoin(this.ctx, {
        applyPolicy: (policy) => this.recording.applyPolicy(policy),
        offer: (pid) => this.offer(pid, true),
        close: (reason) => this.close(reason),
        restartRecorder: () => this.recording.restart(),
      })
    s.on('connect', back)
    this.offFns.push(() => s.off('connect', back))
    const online = () => this.restartAll()
    window.addEventListener('online', online)
    this.offFns.push(() => window.removeEventListener('online', online))
  }

  /** Offer to a participant: on the existing connection (ICE restart) or a new one. */
  private async offer(pid: number, iceRestart: boolean, sent?: () => void): Promise<void> {
    let peer = this.mesh.get(pid)
    const usable = peer && !['closed', 'failed'].includes(peer.pc.connectionState) && peer.offerer
    if (!peer || !usable) {
      const warm = iceRestart ? null : await this.prep?.takeWarmPeer('offer', this.ctx.config(), this.state.local)
      if (warm?.pc.localDescription) {
        // Made while the tablet rang: the offer and the first candidates are ready to go.
        peer = this.mesh.create(pid, true, warm.pc)
        const sdp = warm.pc.localDescription.sdp
        mark('offer_sent')
        const acked = this.signal(pid, 'offer', sdp, false)
        for (const c of warm.candidates) this.sendCandidate(pid, c)
        sent?.()
        await acked
        return
      }
      peer = this.mesh.create(pid, true)
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
    if (this.ctx.closed || !peer.offerer || !link.connected) return
    void this.sendOffer(peer, true)
    this.recording.restart() // an ICE failure: the recorder gets a new offer too
  }

  private restartAll(): void {
    for (const peer of this.mesh.all()) this.restartIce(peer)
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
    if (this.ctx.closed) return
    if (d.kind === 'offer') {
      let peer = this.mesh.get(d.from)
      const reuse =
        peer && !peer.offerer && peer.pc.connectionState !== 'closed' && peer.pc.signalingState === 'stable'
      if (!peer || !reuse) {
        const warm = peer ? null : await this.prep?.takeWarmPeer('answer', this.ctx.config(), this.state.local)
        peer = this.mesh.create(d.from, false, warm?.pc ?? null)
      }
      try {
        await peer.pc.setRemoteDescription({ type: 'offer', sdp: d.sdp ?? '' })
      } catch {
        // The rejoiner built a new connection: start over with a fresh one.
        peer = this.mesh.create(d.from, false)
        await peer.pc.setRemoteDescription({ type: 'offer', sdp: d.sdp ?? '' })
      }
      mark('remote_set')
      const local = this.state.local
      if (local) {
        const sending = peer.pc.getSenders().map((s) => s.track)
        for (const track of local.getTracks()) if (!sending.includes(track)) peer.pc.addTrack(track, local)
      }
      await this.mesh.flushCandidates(peer)
      const answer = await peer.pc.createAnswer()
      await peer.pc.setLocalDescription(answer)
      mark('answer_sent')
      // After the server acked the relay: our next reads must not queue behind it.
      await this.signal(d.from, 'answer', peer.pc.localDescription?.sdp ?? answer.sdp ?? '')
      this.negotiatedNow()
    } else if (d.kind === 'answer') {
      const peer = this.mesh.get(d.from)
      if (!peer || peer.pc.signalingState !== 'have-local-offer') return
      await peer.pc.setRemoteDescription({ type: 'answer', sdp: d.sdp ?? '' })
      mark('answer_set')
      this.negotiatedNow()
      await this.mesh.flushCandidates(peer)
    } else if (d.kind === 'candidate' && d.candidate) {
      const peer = this.mesh.get(d.from)
      if (!peer) {
        this.mesh.keepEarly(d.from, d.candidate)
        return
      }
      if (!peer.pc.remoteDescription) peer.pending.push(d.candidate)
      else await peer.pc.addIceCandidate(d.candidate).catch(() => undefined)
    }
  }
}
