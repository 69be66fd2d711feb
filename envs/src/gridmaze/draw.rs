//! ASCII and RGB pictures of a [`GridMaze`].

use std::fmt::Write;

use super::{ActionMode, Cell, GridMaze, Pos};
use crate::render::Frame;

/// Wall colour.
const WALL_RGB: [u8; 3] = [40, 44, 52];
/// Wall colour inside the agent's view.
const WALL_SEEN_RGB: [u8; 3] = [96, 88, 50];
/// Floor colour.
const FLOOR_RGB: [u8; 3] = [225, 225, 225];
/// Floor colour inside the agent's view.
const FLOOR_SEEN_RGB: [u8; 3] = [255, 236, 150];
/// Goal colour.
const GOAL_RGB: [u8; 3] = [46, 170, 80];
/// Agent colour.
const AGENT_RGB: [u8; 3] = [210, 40, 40];

impl GridMaze {
    /// A text picture of the maze, one character per cell, followed by a status line.
    ///
    /// Outside the view: `#` wall, blank floor. Inside the agent's view: `%` wall, `.` floor.
    /// `G` the goal; the agent is `A` (absolute and `move_run` actions) or `^ > v <` (its
    /// facing, egocentric actions).
    pub fn ascii(&self) -> String {
        let mut s = String::with_capacity((self.size + 1) * self.size + 64);
        let agent = self.agent_pos();
        for r in 0..self.size {
            for c in 0..self.size {
                let p = Pos::new(r, c);
                let seen = self.in_view(p);
                let ch = if p == agent {
                    match self.cfg.actions {
                        ActionMode::Absolute | ActionMode::MoveRun => 'A',
                        ActionMode::Egocentric => ['^', '>', 'v', '<'][self.facing as usize],
                    }
                } else {
                    match (self.cell(p), seen) {
                        (Cell::Goal, _) => 'G',
                        (Cell::Wall, false) => '#',
                        (Cell::Wall, true) => '%',
                        (Cell::Floor, false) => ' ',
                        (Cell::Floor, true) => '.',
                    }
                };
                s.push(ch);
            }
            s.push('\n');
        }
        let st = self.episode_stats();
        let _ = writeln!(
            s,
            "t={}/{} goals={} return={:.2}",
            self.time_step(),
            self.cfg.horizon,
            st.count(super::GOALS).unwrap_or(0.0),
            st.ret
        );
        s
    }

    /// An RGB picture, `cell_px` pixels per cell: dark walls, light floor, the view window
    /// tinted yellow, the goal green, the agent a red square (with a notch on its facing side
    /// for egocentric actions).
    pub fn frame(&self, cell_px: usize) -> Frame {
        let px = cell_px.max(2);
        let side = self.size * px;
        let mut f = Frame::new(side, side);
        for r in 0..self.size {
            for c in 0..self.size {
                let p = Pos::new(r, c);
                let seen = self.in_view(p);
                let colour = match (self.cell(p), seen) {
                    (Cell::Goal, _) => GOAL_RGB,
                    (Cell::Wall, false) => WALL_RGB,
                    (Cell::Wall, true) => WALL_SEEN_RGB,
                    (Cell::Floor, false) => FLOOR_RGB,
                    (Cell::Floor, true) => FLOOR_SEEN_RGB,
                };
                f.fill_rect(c * px, r * px, px, px, colour);
            }
        }
        let a = self.agent_pos();
        let inset = px / 5;
        let (x0, y0) = (a.col * px, a.row * px);
        f.fill_rect(
            x0 + inset,
            y0 + inset,
            px - 2 * inset,
            px - 2 * inset,
            AGENT_RGB,
        );
        if self.cfg.actions == ActionMode::Egocentric && inset > 0 {
            // A dark notch on the facing side.
            let w = (px / 3).max(1);
            let mid = px / 2 - w / 2;
            let (nx, ny, nw, nh) = match self.facing {
                0 => (x0 + mid, y0 + inset, w, inset),
                1 => (x0 + px - 2 * inset, y0 + mid, inset, w),
                2 => (x0 + mid, y0 + px - 2 * inset, w, inset),
                _ => (x0 + inset, y0 + mid, inset, w),
            };
            f.fill_rect(nx, ny, nw, nh, [60, 0, 0]);
        }
        f
    }
}
