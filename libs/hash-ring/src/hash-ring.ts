import { hash32 } from './hash32';

export interface HashRingOptions {
  /**
   * Virtual nodes per unit of weight (default 160, as libketama). A replica of weight w owns
   * round(w × vnodesPerWeight) points; its key share then deviates from w/W by a relative
   * standard deviation of about sqrt((1 − share) / points) — 160 points: ~6 % at 3 replicas.
   */
  vnodesPerWeight?: number;
  /**
   * Consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam 2018): `acquire`
   * never gives a replica more than ceil(c × m × w / W) assignments, m the live assignments
   * including the new one, w/W its weight share. Undefined (the default) = unbounded; 1.25 is
   * the usual choice. Must be ≥ 1 (below 1 the bounds do not add up to m).
   */
  boundedLoadFactor?: number;
}

const DEFAULT_VNODES_PER_WEIGHT = 160;
/** Keeps float error in c × m × w / W from lifting an exact integer bound by one. */
const BOUND_EPSILON = 1e-9;
const EMPTY = new Uint32Array(0);

/**
 * Weighted consistent-hash ring. Points are two parallel sorted arrays (hash, owner slot), so a
 * pick is one binary search and a short forward walk. A replica's vnode i sits at
 * hash32(`${id}#${i}`), independent of the other replicas and of its own weight, so
 *
 * - the ring is the same whatever order replicas were added in (ties on a hash are broken by id);
 * - raising a weight adds points and lowering it removes the highest-numbered ones: only the keys
 *   of those points move, and the ring equals one built fresh with the new weight;
 * - add / remove / reweight merge the changed points into the arrays in O(V), no re-sort.
 *
 * Not re-entrant: a `skip` callback must not call back into the same ring.
 */
export class HashRing {
  private readonly vnodesPerWeight: number;
  private readonly loadFactor: number | undefined;

  /** Sorted ring: points[i] is a hash, owners[i] the slot of the replica that owns it. */
  private points: Uint32Array = EMPTY;
  private owners: Uint32Array = EMPTY;

  /** Per replica slot (slots of removed replicas are reused). */
  private slotIds: string[] = [];
  private slotWeights: number[] = [];
  private slotVnodes: number[] = [];
  private slotLoads: number[] = [];
  /** Epoch marks for "already seen in this walk": no Set per pick. */
  private seen: Uint32Array = new Uint32Array(8);
  private epoch = 0;
  private readonly freeSlots: number[] = [];
  private readonly slotById = new Map<string, number>();

  /** Replicas that own at least one point (weight > 0), and their total weight. */
  private active = 0;
  private activeWeight = 0;
  private totalLoad = 0;

  constructor(options: HashRingOptions = {}) {
    const vpw = options.vnodesPerWeight ?? DEFAULT_VNODES_PER_WEIGHT;
    if (!Number.isInteger(vpw) || vpw < 1) {
      throw new RangeError(`vnodesPerWeight must be a positive integer, got ${vpw}`);
    }
    const c = options.boundedLoadFactor;
    if (c !== undefined && !(Number.isFinite(c) && c >= 1)) {
      throw new RangeError(`boundedLoadFactor must be a number ≥ 1, got ${c}`);
    }
    this.vnodesPerWeight = vpw;
    this.loadFactor = c;
  }

  /** Number of replicas (including weight-0 ones, which own no keys). */
  get size(): number {
    return this.slotById.size;
  }

  has(id: string): boolean {
    return this.slotById.has(id);
  }

  /** Replica ids, sorted. */
  ids(): string[] {
    return [...this.slotById.keys()].sort();
  }

  weight(id: string): number | undefined {
    const slot = this.slotById.get(id);
    return slot === undefined ? undefined : this.slotWeights[slot];
  }

  /** Adds a replica (weight default 1; 0 = present but owns no keys). An existing id is reweighted. */
  add(id: string, weight = 1): void {
    checkWeight(weight);
    const existing = this.slotById.get(id);
    if (existing !== undefined) {
      this.reweight(existing, weight);
      return;
    }
    const slot = this.allocSlot(id);
    this.slotWeights[slot] = weight;
    this.slotVnodes[slot] = 0;
    this.slotLoads[slot] = 0;
    this.reweight(slot, weight);
  }

  /**
   * add() for many replicas with a single merge: building a ring of N replicas costs one sort of
   * the new points, not N merges of the whole ring. Same result as adding them one by one.
   */
  addMany(replicas: Iterable<readonly [id: string, weight?: number]>): void {
    const pending = new Set<number>();
    for (const [id, weight = 1] of replicas) {
      checkWeight(weight);
      const existing = this.slotById.get(id);
      if (existing !== undefined && pending.has(existing)) {
        this.slotWeights[existing] = weight; // listed twice in the batch: the last weight wins, as with add()
      } else if (existing !== undefined) {
        this.reweight(existing, weight);
      } else {
        const slot = this.allocSlot(id);
        this.slotWeights[slot] = weight;
        this.slotVnodes[slot] = 0;
        this.slotLoads[slot] = 0;
        pending.add(slot);
      }
    }
    let total = 0;
    for (const slot of pending) {
      const vnodes = this.vnodesFor(this.slotWeights[slot]);
      this.slotVnodes[slot] = vnodes;
      total += vnodes;
    }
    this.recount();
    if (total === 0) return;
    const points = new Uint32Array(total);
    const owners = new Uint32Array(total);
    let o = 0;
    for (const slot of pending) {
      const id = this.slotIds[slot];
      for (let i = 0; i < this.slotVnodes[slot]; i++) {
        points[o] = hash32(`${id}#${i}`);
        owners[o++] = slot;
      }
    }
    const order = Array.from({ length: total }, (_, i) => i).sort((a, b) =>
      this.before(points[a], owners[a], points[b], owners[b])
        ? -1
        : this.before(points[b], owners[b], points[a], owners[a])
          ? 1
          : 0,
    );
    const sortedPoints = new Uint32Array(total);
    const sortedOwners = new Uint32Array(total);
    for (let i = 0; i < total; i++) {
      sortedPoints[i] = points[order[i]];
      sortedOwners[i] = owners[order[i]];
    }
    this.mergeIn(sortedPoints, sortedOwners);
  }

  setWeight(id: string, weight: number): void {
    checkWeight(weight);
    const slot = this.slotById.get(id);
    if (slot === undefined) throw new RangeError(`unknown replica ${id}`);
    this.reweight(slot, weight);
  }

  /** Removes a replica and its points; its keys move to their next replica in ring order. Its loads are dropped. */
  remove(id: string): boolean {
    const slot = this.slotById.get(id);
    if (slot === undefined) return false;
    if (this.slotVnodes[slot] > 0) this.dropOwner(slot);
    this.totalLoad -= this.slotLoads[slot];
    this.slotById.delete(id);
    this.slotIds[slot] = '';
    this.slotWeights[slot] = 0;
    this.slotVnodes[slot] = 0;
    this.slotLoads[slot] = 0;
    this.freeSlots.push(slot);
    this.recount();
    return true;
  }

  /**
   * Up to n distinct replicas in ring order from the key's position: the primary first, then the
   * failover order. Replicas for which `skip` returns true are left out without changing the
   * order of the rest (so pick(k, n, skip) = pick(k, all).filter(not skip).slice(0, n)).
   */
  pick(key: string, n = 1, skip?: (id: string) => boolean): string[] {
    const out: string[] = [];
    const len = this.points.length;
    if (len === 0 || n < 1) return out;
    const want = n < this.active ? n : this.active;
    const points = this.points;
    const owners = this.owners;
    const seen = this.seen;
    const epoch = this.nextEpoch();
    let i = lowerBound(points, hash32(key));
    let distinct = 0;
    for (let step = 0; step < len; step++, i++) {
      if (i === len) i = 0;
      const slot = owners[i];
      if (seen[slot] === epoch) continue;
      seen[slot] = epoch;
      const id = this.slotIds[slot];
      if (skip === undefined || !skip(id)) {
        out.push(id);
        if (out.length === want) break;
      }
      if (++distinct === this.active) break;
    }
    return out;
  }

  /** pick(key, 1, skip)[0] without the array. */
  primary(key: string, skip?: (id: string) => boolean): string | undefined {
    const slot = this.firstEligible(hash32(key), skip, false);
    return slot < 0 ? undefined : this.slotIds[slot];
  }

  /**
   * Chooses the replica for a new assignment (a session) and counts it; `release` it when the
   * assignment ends. With bounded loads: the first replica in ring order below its bound
   * (`loadBound`); if `skip` excludes every such replica, the eligible one with the lowest load
   * per weight (the bound is then exceeded, because too few replicas are left to hold it).
   * Without the option: the primary. Undefined when no replica is eligible.
   */
  acquire(key: string, skip?: (id: string) => boolean): string | undefined {
    const slot = this.firstEligible(hash32(key), skip, this.loadFactor !== undefined);
    if (slot < 0) return undefined;
    this.slotLoads[slot]++;
    this.totalLoad++;
    return this.slotIds[slot];
  }

  /** Ends one assignment of `id`. Unknown ids and replicas at 0 are ignored (it may have been removed). */
  release(id: string): void {
    const slot = this.slotById.get(id);
    if (slot === undefined || this.slotLoads[slot] === 0) return;
    this.slotLoads[slot]--;
    this.totalLoad--;
  }

  /** Live assignments of `id` (0 when unknown). */
  load(id: string): number {
    const slot = this.slotById.get(id);
    return slot === undefined ? 0 : this.slotLoads[slot];
  }

  /** Live assignments over all replicas. */
  get totalLoads(): number {
    return this.totalLoad;
  }

  /**
   * The most assignments `id` may hold once the next one is counted: ceil(c × (m + 1) × w / W).
   * Infinity without bounded loads; 0 for weight 0 or unknown ids.
   */
  loadBound(id: string): number {
    if (this.loadFactor === undefined) return Infinity;
    const slot = this.slotById.get(id);
    if (slot === undefined || this.slotVnodes[slot] === 0) return 0;
    return this.boundOf(slot, this.totalLoad + 1);
  }

  // ---- internals ----

  private boundOf(slot: number, assignments: number): number {
    const c = this.loadFactor ?? Infinity;
    return Math.ceil((c * assignments * this.slotWeights[slot]) / this.activeWeight - BOUND_EPSILON);
  }

  /** Ring walk from hash h: first replica not skipped (and, when bounded, below its bound); -1 if none. */
  private firstEligible(h: number, skip: ((id: string) => boolean) | undefined, bounded: boolean): number {
    const len = this.points.length;
    if (len === 0) return -1;
    const points = this.points;
    const owners = this.owners;
    const seen = this.seen;
    const epoch = this.nextEpoch();
    const m = this.totalLoad + 1;
    let fallback = -1;
    let fallbackRatio = Infinity;
    let i = lowerBound(points, h);
    let distinct = 0;
    for (let step = 0; step < len; step++, i++) {
      if (i === len) i = 0;
      const slot = owners[i];
      if (seen[slot] === epoch) continue;
      seen[slot] = epoch;
      if (skip === undefined || !skip(this.slotIds[slot])) {
        if (!bounded) return slot;
        const load = this.slotLoads[slot];
        if (load < this.boundOf(slot, m)) return slot;
        const ratio = (load + 1) / this.slotWeights[slot];
        if (ratio < fallbackRatio) {
          fallbackRatio = ratio;
          fallback = slot;
        }
      }
      if (++distinct === this.active) break;
    }
    return fallback;
  }

  private nextEpoch(): number {
    if (this.epoch === 0xffffffff) {
      this.seen.fill(0);
      this.epoch = 0;
    }
    return ++this.epoch;
  }

  private allocSlot(id: string): number {
    const slot = this.freeSlots.length > 0 ? this.freeSlots.pop()! : this.slotIds.length;
    this.slotIds[slot] = id;
    this.slotById.set(id, slot);
    if (slot >= this.seen.length) {
      const grown = new Uint32Array(this.seen.length * 2);
      grown.set(this.seen);
      this.seen = grown;
    }
    return slot;
  }

  /** Summed afresh after each change (rare, and O(V) anyway): no float drift from += and -=. */
  private recount(): void {
    let active = 0;
    let weight = 0;
    for (const slot of this.slotById.values()) {
      if (this.slotVnodes[slot] === 0) continue;
      active++;
      weight += this.slotWeights[slot];
    }
    this.active = active;
    this.activeWeight = weight;
  }

  private vnodesFor(weight: number): number {
    if (weight === 0) return 0;
    const v = Math.round(weight * this.vnodesPerWeight);
    return v < 1 ? 1 : v;
  }

  /** Moves the slot from its current vnode count to the one of `weight` by adding or removing points. */
  private reweight(slot: number, weight: number): void {
    const before = this.slotVnodes[slot];
    const after = this.vnodesFor(weight);
    this.slotWeights[slot] = weight;
    this.slotVnodes[slot] = after;
    this.recount();
    if (after > before) {
      const added = this.labelPoints(slot, before, after);
      this.mergeIn(added, new Uint32Array(added.length).fill(slot));
    } else if (after === 0) this.dropOwner(slot);
    else if (after < before) this.dropPoints(slot, this.labelPoints(slot, after, before));
  }

  /** Sorted hashes of the slot's vnodes [from, to). */
  private labelPoints(slot: number, from: number, to: number): Uint32Array {
    const id = this.slotIds[slot];
    const out = new Uint32Array(to - from);
    for (let i = from; i < to; i++) out[i - from] = hash32(`${id}#${i}`);
    return out.sort();
  }

  /** (point, owner) order: by hash, ties by id, so the ring does not depend on slot numbers. */
  private before(pointA: number, slotA: number, pointB: number, slotB: number): boolean {
    return pointA < pointB || (pointA === pointB && this.slotIds[slotA] < this.slotIds[slotB]);
  }

  /**
   * Merges new (point, owner) pairs, sorted in ring order, into the ring: a binary search per new point and block
   * copies of the runs between them, so O(V) memcpy plus O(k log V) rather than a re-sort.
   */
  private mergeIn(added: Uint32Array, addedOwners: Uint32Array): void {
    const oldPoints = this.points;
    const oldOwners = this.owners;
    const n = oldPoints.length;
    const points = new Uint32Array(n + added.length);
    const owners = new Uint32Array(n + added.length);
    let i = 0;
    let o = 0;
    for (let j = 0; j < added.length; j++) {
      const point = added[j];
      const slot = addedOwners[j];
      let lo = i;
      let hi = n;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (this.before(oldPoints[mid], oldOwners[mid], point, slot)) lo = mid + 1;
        else hi = mid;
      }
      if (lo > i) {
        points.set(oldPoints.subarray(i, lo), o);
        owners.set(oldOwners.subarray(i, lo), o);
        o += lo - i;
        i = lo;
      }
      points[o] = point;
      owners[o++] = slot;
    }
    points.set(oldPoints.subarray(i), o);
    owners.set(oldOwners.subarray(i), o);
    this.points = points;
    this.owners = owners;
  }

  /** Removes all the slot's points. */
  private dropOwner(slot: number): void {
    this.dropWhere(slot, null, this.slotVnodesOnRing(slot));
  }

  /** Removes the slot's points listed in `removed` (sorted): both walk the ring in hash order. */
  private dropPoints(slot: number, removed: Uint32Array): void {
    this.dropWhere(slot, removed, removed.length);
  }

  /** Points the slot has on the ring now (its vnode count may already be updated). */
  private slotVnodesOnRing(slot: number): number {
    const owners = this.owners;
    let c = 0;
    for (let i = 0; i < owners.length; i++) if (owners[i] === slot) c++;
    return c;
  }

  /** Copies the ring without `count` of the slot's points (all of them, or those in `only`), run by run. */
  private dropWhere(slot: number, only: Uint32Array | null, count: number): void {
    const oldPoints = this.points;
    const oldOwners = this.owners;
    const n = oldPoints.length;
    const points = new Uint32Array(n - count);
    const owners = new Uint32Array(n - count);
    let r = 0;
    let o = 0;
    let runStart = 0;
    for (let i = 0; i < n && r < count; i++) {
      if (oldOwners[i] !== slot || (only !== null && oldPoints[i] !== only[r])) continue;
      points.set(oldPoints.subarray(runStart, i), o);
      owners.set(oldOwners.subarray(runStart, i), o);
      o += i - runStart;
      runStart = i + 1;
      r++;
    }
    points.set(oldPoints.subarray(runStart), o);
    owners.set(oldOwners.subarray(runStart), o);
    this.points = points;
    this.owners = owners;
  }
}

function checkWeight(weight: number): void {
  if (!(Number.isFinite(weight) && weight >= 0)) {
    throw new RangeError(`weight must be a finite number ≥ 0, got ${weight}`);
  }
}

/** First index whose point is ≥ h (points.length when none: the walk wraps to 0). */
function lowerBound(points: Uint32Array, h: number): number {
  let lo = 0;
  let hi = points.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (points[mid] < h) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
