// What the parts of one call share: the join ack, who is in it, the state the views show.
import { reactive } from 'vue'
import type { CallJoin, Participant } from '../socket'
import type { RecorderStatus } from '../recorder'
import type { MediaProblem } from './media'

export interface RemotePeer {
  pid: number
  name: string
  role: string
  stream: MediaStream | null
  ice: string
  dropped: boolean
}

export interface SignalIn {
  call_id: number
  from: number
  kind: 'offer' | 'answer' | 'candidate' | 'end_of_candidates'
  sdp?: string | null
  candidate?: RTCIceCandidateInit | null
  ice_restart?: boolean
}

function callState() {
  return reactive({
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
}

export type CallState = ReturnType<typeof callState>

export class CallContext {
  readonly state: CallState = callState()
  readonly participants = new Map<number, Participant>()
  closed = false

  constructor(public join: CallJoin) {
    this.state.callId = join.call_id
    this.state.me = join.participant_id
    this.state.caseId = join.case_id
    this.state.ticketId = join.ticket_id
    for (const p of join.participants) this.participants.set(p.id, p)
  }

  get callId(): number {
    return this.join.call_id
  }

  config(): RTCConfiguration {
    return { iceServers: this.join.ice_servers ?? [] }
  }
}
