// Photos are prepared on the device before they go up: turned upright (EXIF orientation), the
// long side brought down to the server's photo_max_side and re-encoded as JPEG. A 12-megapixel tablet photo
// of 3-8 MB becomes a few hundred kB, still sharp enough to read an ID card; the server turns,
// strips and thumbnails it as any other upload (docs/materials.md).

/** How a photo is prepared: the server's settings photo_max_side and photo_quality, sent with
 * the case's checklist. The defaults are the same as the server's. 2048 px over an A4 page's
 * 297 mm is ~175 dpi, and over an ID card photographed to fill the frame far more: print stays
 * readable when zoomed. bench/weak_uplink.py, shutter to the clerk's thumbnail on a 1 Mbit/s
 * uplink: 5.6 s at 2560 px / 0.85, 4.0 s at 2048 px / 0.82 (239 kB sent; the goal is <= 5 s). */
export interface PhotoPrep {
  max_side: number
  quality: number
}
export const PHOTO_DEFAULTS: PhotoPrep = { max_side: 2048, quality: 0.82 }
// Below this a photo is sent as it is (already small; re-encoding would only lose detail).
const SMALL_BYTES = 400 * 1024

declare global {
  interface Window {
    /** Benchmarks only (bench/weak_uplink.py): send photos as shot, for the comparison. */
    __cwRawUpload?: boolean
    /** Benchmarks only: the last photo prepared (time taken, bytes before and after). */
    __cwLastPhoto?: { ms: number; from: number; to: number }
  }
}

export interface Prepared {
  blob: Blob
  name: string
  /** Whether the photo was changed (false: the original goes up). */
  prepared: boolean
}

/** The photo ready to upload; anything that is not a JPEG or PNG photo is returned as is. */
export async function preparePhoto(
  file: Blob,
  name: string,
  accepted: string[],
  prep: PhotoPrep = PHOTO_DEFAULTS,
): Promise<Prepared> {
  const asIs = { blob: file, name, prepared: false }
  if (__TEST_HOOKS__ && window.__cwRawUpload) return asIs
  if (file.type !== 'image/jpeg' && file.type !== 'image/png') return asIs
  if (accepted.length && !accepted.includes('image/jpeg')) return asIs
  if (typeof createImageBitmap !== 'function') return asIs
  const t0 = performance.now()
  let bmp: ImageBitmap
  try {
    // 'from-image' applies the EXIF orientation while decoding.
    bmp = await createImageBitmap(file, { imageOrientation: 'from-image' })
  } catch {
    return asIs // a format this browser cannot decode: the server handles it
  }
  try {
    const long = Math.max(bmp.width, bmp.height)
    if (long <= prep.max_side && file.size <= SMALL_BYTES) return asIs
    const scale = Math.min(1, prep.max_side / long)
    const w = Math.max(1, Math.round(bmp.width * scale))
    const h = Math.max(1, Math.round(bmp.height * scale))
    const blob = await encode(bmp, w, h, prep.quality)
    if (__TEST_HOOKS__) window.__cwLastPhoto = { ms: performance.now() - t0, from: file.size, to: blob?.size ?? 0 }
    if (!blob || blob.size >= file.size) return asIs
    return { blob, name: name.replace(/\.(jpe?g|png)$/i, '') + '.jpg', prepared: true }
  } finally {
    bmp.close()
  }
}

async function encode(bmp: ImageBitmap, w: number, h: number, quality: number): Promise<Blob | null> {
  if (typeof OffscreenCanvas === 'function') {
    const c = new OffscreenCanvas(w, h)
    const g = c.getContext('2d')
    if (!g) return null
    draw(g, bmp, w, h)
    return await c.convertToBlob({ type: 'image/jpeg', quality })
  }
  const c = document.createElement('canvas')
  c.width = w
  c.height = h
  const g = c.getContext('2d')
  if (!g) return null
  draw(g, bmp, w, h)
  return await new Promise<Blob | null>((r) => c.toBlob(r, 'image/jpeg', quality))
}

function draw(g: OffscreenCanvasRenderingContext2D | CanvasRenderingContext2D, bmp: ImageBitmap, w: number, h: number) {
  g.fillStyle = '#fff' // a transparent PNG becomes white paper, not black
  g.fillRect(0, 0, w, h)
  g.imageSmoothingEnabled = true
  g.imageSmoothingQuality = 'high'
  g.drawImage(bmp, 0, 0, w, h)
}
