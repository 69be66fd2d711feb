//! Maze generation: randomised depth-first search (a perfect maze), optional loops, and the
//! choice of start and goal. Everything reuses buffers owned by the env: no allocation.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use super::{FLOOR, WALL};

/// Reusable buffers and the fixed geometry of generated mazes of one size.
#[derive(Clone, Debug)]
pub(crate) struct MazeGen {
    /// Maze cells per side, `(size − 1) / 2`; maze cell `c` sits at grid row `1 + 2·(c / n)`,
    /// column `1 + 2·(c % n)`.
    pub n: usize,
    /// Padded grid index of every maze cell (`n²` entries), fixed for a size.
    pub cell_index: Vec<u32>,
    /// DFS stack of maze cell numbers.
    stack: Vec<u32>,
    /// Distance from the start to each maze cell, in moves.
    pub depth: Vec<u32>,
}

impl MazeGen {
    /// Geometry for a `size × size` maze stored with `pad` wall cells around it.
    pub fn new(size: usize, pad: usize) -> Self {
        let n = (size - 1) / 2;
        let stride = size + 2 * pad;
        let cell_index = (0..n * n)
            .map(|c| {
                let row = 1 + 2 * (c / n) + pad;
                let col = 1 + 2 * (c % n) + pad;
                (row * stride + col) as u32
            })
            .collect();
        Self {
            n,
            cell_index,
            stack: Vec::with_capacity(n * n),
            depth: vec![0; n * n],
        }
    }

    /// Carves a perfect maze into `grid` (all cells reset to wall first) by randomised DFS from
    /// a random start cell, and returns the start cell number. `depth` then holds each cell's
    /// distance from the start in moves: in a tree the DFS path is the only path.
    pub fn carve_perfect(&mut self, grid: &mut [u8], stride: usize, rng: &mut ChaCha8Rng) -> usize {
        grid.fill(WALL);
        let n = self.n;
        let start = rng.random_range(0..n * n);
        grid[self.cell_index[start] as usize] = FLOOR;
        self.depth[start] = 0;
        self.stack.clear();
        self.stack.push(start as u32);
        // Cell-number steps and grid steps of the four directions N, E, S, W.
        let grid_step = [-(stride as isize), 1, stride as isize, -1];
        while let Some(&top) = self.stack.last() {
            let c = top as usize;
            let (r, col) = (c / n, c % n);
            let mut options = [(0usize, 0usize); 4];
            let mut k = 0;
            let mut consider = |nb: usize, dir: usize| {
                if grid[self.cell_index[nb] as usize] == WALL {
                    options[k] = (nb, dir);
                    k += 1;
                }
            };
            if r > 0 {
                consider(c - n, 0);
            }
            if col + 1 < n {
                consider(c + 1, 1);
            }
            if r + 1 < n {
                consider(c + n, 2);
            }
            if col > 0 {
                consider(c - 1, 3);
            }
            if k == 0 {
                self.stack.pop();
                continue;
            }
            let (nb, dir) = options[if k == 1 { 0 } else { rng.random_range(0..k) }];
            let here = self.cell_index[c] as usize;
            grid[here.wrapping_add_signed(grid_step[dir])] = FLOOR;
            grid[self.cell_index[nb] as usize] = FLOOR;
            self.depth[nb] = self.depth[c] + 2;
            self.stack.push(nb as u32);
        }
        start
    }

    /// Knocks out each remaining wall between two adjacent maze cells with probability
    /// `density`. Returns whether any wall was removed.
    pub fn add_loops(
        &self,
        grid: &mut [u8],
        size: usize,
        pad: usize,
        density: f32,
        rng: &mut ChaCha8Rng,
    ) -> bool {
        let stride = size + 2 * pad;
        let mut changed = false;
        for row in 1..size - 1 {
            // Walls between cells: odd row & even column, or even row & odd column.
            let first_col = if row % 2 == 1 { 2 } else { 1 };
            let mut col = first_col;
            while col < size - 1 {
                let i = (row + pad) * stride + col + pad;
                if grid[i] == WALL && rng.random::<f32>() < density {
                    grid[i] = FLOOR;
                    changed = true;
                }
                col += 2;
            }
        }
        changed
    }

    /// Picks the goal cell: uniformly among cells at distance ≥ `min_distance` from the start
    /// (clamped to `1..=max distance`, so a cell always qualifies), using `depth`.
    pub fn pick_goal(&self, start: usize, min_distance: u32, rng: &mut ChaCha8Rng) -> usize {
        let max = self.depth.iter().copied().max().unwrap_or(0);
        let threshold = min_distance.clamp(1, max.max(1));
        let count = self.depth.iter().filter(|&&d| d >= threshold).count();
        let mut k = rng.random_range(0..count.max(1));
        for (c, &d) in self.depth.iter().enumerate() {
            if d >= threshold {
                if k == 0 {
                    return c;
                }
                k -= 1;
            }
        }
        // Unreachable for n ≥ 2 (some cell other than the start has depth ≥ 1).
        if start == 0 { 1 } else { 0 }
    }
}

/// Breadth-first search over floor and goal cells of a padded grid from `source`, writing
/// distances in moves into `dist` (`u32::MAX` = unreachable or wall).
pub(crate) fn bfs(
    grid: &[u8],
    stride: usize,
    source: usize,
    dist: &mut [u32],
    queue: &mut Vec<u32>,
) {
    dist.fill(u32::MAX);
    queue.clear();
    dist[source] = 0;
    queue.push(source as u32);
    let steps = [-(stride as isize), 1, stride as isize, -1];
    let mut head = 0;
    while head < queue.len() {
        let i = queue[head] as usize;
        head += 1;
        let d = dist[i] + 1;
        for s in steps {
            let j = i.wrapping_add_signed(s);
            if j < grid.len() && grid[j] != WALL && dist[j] == u32::MAX {
                dist[j] = d;
                queue.push(j as u32);
            }
        }
    }
}
