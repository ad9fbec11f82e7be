//! PC-DARTS (`kernels/pcdarts.cu`): the partial-channel merge forward and backward (dm, dx, ds)
//! and the node softmax, against `cpu::pcdarts` in f64.

use darts::backend::cpu::pcdarts as cpu;
use darts::backend::geom::{node_edges, PcGeom};
use darts::backend::gpu::launch::pcdarts as gpu;
use darts::backend::gpu::Gpu;
use darts::rng::Rng;

use crate::{nan, normals, up, wide, Outcome};

/// `(n, c, h, w, k, stride, with acc)`.
const MERGES: [(usize, usize, usize, usize, usize, usize, bool); 7] = [
    // A normal and a reduction edge of the paper network's first stage, batch 2.
    (2, 16, 32, 32, 4, 1, true),
    (2, 32, 32, 32, 4, 2, false),
    // Awkward: odd sizes on stride 1, batch 1, k = 2 and 1, a single 2x2 window.
    (3, 8, 5, 7, 4, 1, false),
    (1, 12, 6, 10, 4, 2, true),
    (1, 6, 2, 2, 2, 2, true),
    (2, 3, 3, 3, 1, 1, true),
    (1, 4, 1, 1, 4, 1, false),
];

/// Runs every PC-DARTS case.
pub fn cases(rt: &Gpu, rng: &mut Rng, out: &mut Vec<Outcome>) {
    const INDEX: usize = 5;
    for (n, c, h, w, k, stride, with_acc) in MERGES {
        let g = PcGeom { n, c, h, w, k, stride };
        let tag = format!("n={n} c={c} {h}x{w} k={k} s{stride}{}", if with_acc { " acc" } else { "" });
        let (m, x, s) = (normals(rng, g.m_len()), normals(rng, g.x_len()), normals(rng, 14));
        let acc = with_acc.then(|| normals(rng, g.y_len()));
        let dy = normals(rng, g.y_len());
        // x is the bypassed channels x[:, c/k:], their own tensor: none when k = 1.
        let gx = (g.xc() > 0).then(|| up(rt, &x));
        let (gm, gs, gdy) = (up(rt, &m), up(rt, &s), up(rt, &dy));
        let gacc = acc.as_ref().map(|a| up(rt, a));
        let s_ptr = gs.ptr() + (4 * INDEX) as u64;

        let mut y = nan(rt, g.y_len());
        gpu::pc_merge_fwd(&g, &gm, gx.as_ref(), gacc.as_ref(), s_ptr, &mut y).unwrap();
        let (wm, wx, ws, wdy) = (wide(&m), wide(&x), wide(&s), wide(&dy));
        let wacc = acc.as_ref().map(|a| wide(a));
        let mut want = vec![0.0; g.y_len()];
        cpu::pc_merge_fwd(&g, &wm, &wx, wacc.as_deref(), ws[INDEX], &mut want);
        out.push(Outcome { name: format!("pc_merge_fwd {tag}"), gpu: y.to_host().unwrap(), cpu: want });

        let (mut dm, mut ds) = (nan(rt, g.m_len()), nan(rt, 14));
        let mut dx = gx.as_ref().map(|_| nan(rt, g.x_len()));
        gpu::pc_merge_bwd(
            &g,
            Some(&gm),
            gx.as_ref(),
            &gdy,
            s_ptr,
            Some(&mut dm),
            dx.as_mut(),
            Some((&mut ds, INDEX)),
        )
        .unwrap();
        let (mut want_dm, mut want_dx) = (vec![0.0; g.m_len()], vec![0.0; g.x_len()]);
        let d =
            cpu::pc_merge_bwd(&g, Some(&wm), &wx, &wdy, ws[INDEX], Some(&mut want_dm), Some(&mut want_dx));
        let mut want_ds = vec![0.0; 14];
        want_ds[INDEX] = d;
        out.push(Outcome {
            name: format!("pc_merge_bwd dm {tag}"),
            gpu: dm.to_host().unwrap(),
            cpu: want_dm,
        });
        if let Some(dx) = dx {
            out.push(Outcome {
                name: format!("pc_merge_bwd dx {tag}"),
                gpu: dx.to_host().unwrap(),
                cpu: want_dx,
            });
        }
        out.push(Outcome {
            name: format!("pc_merge_bwd ds {tag}"),
            gpu: ds.to_host().unwrap(),
            cpu: want_ds,
        });
    }
    for steps in [1, 2, 4, 7] {
        let e = node_edges(steps);
        let (beta, dy) = (normals(rng, e), normals(rng, e));
        let mut y = nan(rt, e);
        gpu::node_softmax_fwd(steps, &up(rt, &beta), &mut y).unwrap();
        let mut want = vec![0.0; e];
        cpu::node_softmax(steps, &wide(&beta), &mut want);
        let yv = y.to_host().unwrap();
        out.push(Outcome { name: format!("node_softmax_fwd steps={steps}"), gpu: yv.clone(), cpu: want });
        let mut dx = nan(rt, e);
        gpu::node_softmax_bwd(steps, &up(rt, &yv), &up(rt, &dy), &mut dx).unwrap();
        let mut want = vec![0.0; e];
        cpu::node_softmax_bwd(steps, &wide(&yv), &wide(&dy), &mut want);
        out.push(Outcome {
            name: format!("node_softmax_bwd steps={steps}"),
            gpu: dx.to_host().unwrap(),
            cpu: want,
        });
    }
}
