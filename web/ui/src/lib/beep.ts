// A short two-tone chime (WebAudio) for alerts that need the worker's attention.
let ctx: AudioContext | null = null

export function beep(): void {
  try {
    const AC = window.AudioContext ?? (window as unknown as { webkitAudioContext?: typeof AudioContext }).webkitAudioContext
    if (!AC) return
    ctx ??= new AC()
    void ctx.resume().catch(() => undefined)
    const t0 = ctx.currentTime
    for (const [i, f] of [880, 660].entries()) {
      const osc = ctx.createOscillator()
      const gain = ctx.createGain()
      osc.type = 'sine'
      osc.frequency.value = f
      const s = t0 + i * 0.22
      gain.gain.setValueAtTime(0.0001, s)
      gain.gain.exponentialRampToValueAtTime(0.25, s + 0.02)
      gain.gain.exponentialRampToValueAtTime(0.0001, s + 0.2)
      osc.connect(gain).connect(ctx.destination)
      osc.start(s)
      osc.stop(s + 0.21)
    }
    if (__TEST_HOOKS__) (window as unknown as { __cwBeeps?: number }).__cwBeeps = ((window as unknown as { __cwBeeps?: number }).__cwBeeps ?? 0) + 1
  } catch {
    /* no sound on this device: the alert still shows */
  }
}
