//! Pictures of what an attention policy attends to: `fbrl render RUN --attention`.
//!
//! Each GIF frame shows the env's picture of the state in which a decision was taken and,
//! beside it, one block per layer: a row per head, a column per window slot (the `τ` previous
//! steps oldest first, then the current step, marked by a dark tick above the block), shaded
//! by the attention weight in the layer's colour; slots of steps before the episode's start are
//! grey. On the env's picture, the places where the attended steps happened
//! ([`envs::Env::agent_rect`] at that step) are tinted in the layer's colour, one horizontal
//! band of the cell per layer, more opaque the more weight the layer gives them.

use envs::Frame;

use crate::eval::RecordedEpisode;

/// The colours of layers 1, 2, … (repeating).
pub const LAYER_COLOURS: [[u8; 3]; 4] = [
    [31, 119, 180],
    [148, 60, 189],
    [230, 120, 20],
    [20, 150, 140],
];
/// Background of the panel beside the env's picture.
const PANEL_RGB: [u8; 3] = [250, 250, 250];
/// A window slot before the episode's start.
const BEFORE_START_RGB: [u8; 3] = [170, 170, 170];
/// The tick above the current step's column.
const TICK_RGB: [u8; 3] = [30, 30, 30];
/// Space around and between the blocks, in pixels.
const MARGIN: usize = 8;

/// The colour of layer `layer` (0-based).
pub fn layer_colour(layer: usize) -> [u8; 3] {
    LAYER_COLOURS[layer % LAYER_COLOURS.len()]
}

/// Where layer `layer` looks at decision step `t`: for every place of the env's picture where
/// an attended step happened, the weight (averaged over heads) summed over the steps that
/// happened there. Slots before the episode's start carry no weight and have no place; the
/// weights sum to one when the env reports [`envs::Env::agent_rect`] at every step.
pub fn place_weights(ep: &RecordedEpisode, t: usize, layer: usize) -> Vec<([usize; 4], f32)> {
    let mut places: Vec<([usize; 4], f32)> = Vec::new();
    for (slot, w) in ep.layer_weights(t, layer).into_iter().enumerate() {
        let Some(step) = ep.slot_step(t, slot) else {
            continue;
        };
        let Some(rect) = ep.agent_rects.get(step).copied().flatten() else {
            continue;
        };
        match places.iter_mut().find(|(r, _)| *r == rect) {
            Some((_, sum)) => *sum += w,
            None => places.push((rect, w)),
        }
    }
    places
}

/// Pixel size of one (head, slot) cell of the panel for span `span`.
fn cell_px(span: usize) -> usize {
    (256 / (span + 1)).clamp(3, 10)
}

/// Opacity for a weight: the square root, so that a weight spread evenly over a long window
/// stays visible while a sharp focus stands out.
fn opacity(w: f32) -> f32 {
    0.9 * w.max(0.0).sqrt()
}

/// White blended towards `colour` by `alpha`.
fn tint(colour: [u8; 3], alpha: f32) -> [u8; 3] {
    let a = alpha.clamp(0.0, 1.0);
    colour.map(|c| (255.0 * (1.0 - a) + f32::from(c) * a).round() as u8)
}

/// The GIF frames of an episode: one per state, the attention of the decision taken there
/// beside it (the last state, where no decision was taken, shows an empty panel).
pub fn draw(ep: &RecordedEpisode) -> Vec<Frame> {
    let span = ep.span();
    let layers = ep.weights.first().map_or(0, Vec::len);
    let heads = ep
        .weights
        .first()
        .and_then(|l| l.first())
        .map_or(0, Vec::len);
    let c = cell_px(span);
    let block_h = heads * c + MARGIN;
    let panel_w = 2 * MARGIN + (span + 1) * c;
    let panel_h = MARGIN + layers * (block_h + MARGIN);
    ep.frames
        .iter()
        .enumerate()
        .map(|(t, env_frame)| {
            let width = env_frame.width + panel_w;
            let height = env_frame.height.max(panel_h);
            let mut f = Frame::new(width, height);
            f.fill_rect(0, 0, width, height, PANEL_RGB);
            f.paste(env_frame, 0, 0);
            if t < ep.weights.len() {
                draw_decision(ep, t, &mut f, env_frame.width, c, block_h);
            }
            f
        })
        .collect()
}

/// The panel blocks and the tinted places of decision step `t`.
fn draw_decision(
    ep: &RecordedEpisode,
    t: usize,
    f: &mut Frame,
    panel_x: usize,
    c: usize,
    block_h: usize,
) {
    let layers = ep.weights[t].len();
    for (l, per_head) in ep.weights[t].iter().enumerate() {
        let colour = layer_colour(l);
        let y0 = MARGIN + l * (block_h + MARGIN) + MARGIN;
        let x0 = panel_x + MARGIN;
        let current = per_head.first().map_or(0, Vec::len).saturating_sub(1);
        f.fill_rect(x0 + current * c, y0 - MARGIN / 2 - 2, c, 3, TICK_RGB);
        for (h, slots) in per_head.iter().enumerate() {
            for (slot, &w) in slots.iter().enumerate() {
                let shade = match ep.slot_step(t, slot) {
                    Some(_) => tint(colour, opacity(w)),
                    None => BEFORE_START_RGB,
                };
                f.fill_rect(x0 + slot * c, y0 + h * c, c - 1, c - 1, shade);
            }
        }
        for (rect, w) in place_weights(ep, t, l) {
            let [x, y, w_px, h_px] = rect;
            let band = (h_px / layers).max(1);
            f.blend_rect(x, y + l * band, w_px, band, colour, opacity(w));
        }
    }
}
