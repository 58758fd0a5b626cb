// The peer connections of a call, one per other participant (a mesh), and the tile each shows.
import { markRaw } from 'vue'
import type { CallContext, RemotePeer } from './context'
import { mark } from './hooks'
import { watchIce } from './resume'

export class Peer {
  readonly pc: RTCPeerConnection
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

/** What a connection's events ask of the session. */
export interface PeerEvents {
  candidate(to: number, c: RTCIceCandidateInit | null): void
  restartIce(peer: Peer): void
  connected(): void
}

export class PeerMesh {
  private peers = new Map<number, Peer>()
  // Candidates relayed ahead of the offer they belong to (the server handles events
  // concurrently, so a candidate may overtake its offer); used when the offer arrives.
  private early = new Map<number, RTCIceCandidateInit[]>()

  constructor(
    private ctx: CallContext,
    private events: PeerEvents,
  ) {}

  get(pid: number): Peer | undefined {
    return this.peers.get(pid)
  }

  all(): IterableIterator<Peer> {
    return this.peers.values()
  }

  connections(): RTCPeerConnection[] {
    return [...this.peers.values()].map((p) => p.pc)
  }

  /** A candidate for a connection not made yet. */
  keepEarly(pid: number, c: RTCIceCandidateInit): void {
    this.early.set(pid, [...(this.early.get(pid) ?? []), c])
  }

  /** A new connection to `pid`, in place of any it had. */
  create(pid: number, offerer: boolean, warm: RTCPeerConnection | null = null): Peer {
    this.drop(pid)
    const peer = new Peer(pid, offerer, this.ctx.config(), warm)
    peer.pending.push(...(this.early.get(pid) ?? []))
    this.early.delete(pid)
    this.peers.set(pid, peer)
    const pc = peer.pc
    const remote = this.remote(pid)
    remote.stream = markRaw(peer.stream)
    pc.onicecandidate = (e) => this.events.candidate(pid, e.candidate ? e.candidate.toJSON() : null)
    pc.ontrack = (e) => {
      if (!peer.stream.getTracks().includes(e.track)) peer.stream.addTrack(e.track)
      // A new MediaStream object makes <video> pick the track up again after renegotiation.
      remote.stream = markRaw(new MediaStream(peer.stream.getTracks()))
    }
    pc.oniceconnectionstatechange = () => {
      remote.ice = pc.iceConnectionState
      watchIce(peer, (p) => this.events.restartIce(p))
    }
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === 'connected') {
        mark('connected')
        remote.ice = 'connected'
        this.events.connected()
      }
    }
    return peer
  }

  drop(pid: number): void {
    const peer = this.peers.get(pid)
    if (peer) {
      if (peer.restartTimer) clearTimeout(peer.restartTimer)
      peer.pc.close()
      this.peers.delete(pid)
    }
    if (!this.ctx.participants.has(pid) || this.ctx.closed) {
      this.ctx.state.remotes = this.ctx.state.remotes.filter((r) => r.pid !== pid)
    }
  }

  dropAll(): void {
    for (const peer of this.peers.values()) this.drop(peer.pid)
  }

  /** The tile of a participant, made on first sight and kept up to date with their name. */
  remote(pid: number): RemotePeer {
    const state = this.ctx.state
    let r = state.remotes.find((x) => x.pid === pid)
    if (!r) {
      const p = this.ctx.participants.get(pid)
      state.remotes.push({
        pid,
        name: p?.display_name ?? '',
        role: p?.role ?? '',
        stream: null,
        ice: 'new',
        dropped: false,
      })
      r = state.remotes[state.remotes.length - 1]
    } else {
      const p = this.ctx.participants.get(pid)
      if (p) {
        r.name = p.display_name
        r.role = p.role
      }
    }
    return r
  }

  async flushCandidates(peer: Peer): Promise<void> {
    const pending = peer.pending.splice(0)
    for (const c of pending) await peer.pc.addIceCandidate(c).catch(() => undefined)
  }
}
