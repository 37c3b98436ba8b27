//! Batches of a fixed training set whose examples differ in length (sentence pairs, pen
//! strokes): grouped by length so that a batch pads little, in a seeded order.

use crate::rng::Rng;

/// The epoch's batches of a fixed training set: a seeded permutation, pools of 50 batches
/// sorted by source length (less padding), cut into batches, the batches shuffled.
pub fn epoch_batches(lengths: &[usize], batch: usize, seed: u64, epoch: usize) -> Vec<Vec<usize>> {
    let mut rng = Rng::derive(seed, "epoch", epoch as u64);
    let order = rng.permutation(lengths.len());
    let mut batches: Vec<Vec<usize>> = Vec::new();
    for pool in order.chunks(batch.max(1) * 50) {
        let mut pool = pool.to_vec();
        pool.sort_by_key(|&i| lengths[i]);
        batches.extend(pool.chunks(batch.max(1)).map(<[usize]>::to_vec));
    }
    let shuffle = rng.permutation(batches.len());
    shuffle.into_iter().map(|i| std::mem::take(&mut batches[i])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_batches_cover_every_pair_once_and_group_lengths() {
        let lengths: Vec<usize> = (0..1000).map(|i| (i * 7919) % 40).collect();
        let batches = epoch_batches(&lengths, 10, 3, 0);
        let mut all: Vec<usize> = batches.concat();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        assert_eq!(batches, epoch_batches(&lengths, 10, 3, 0));
        assert_ne!(batches, epoch_batches(&lengths, 10, 3, 1));
        let spread: usize = batches
            .iter()
            .map(|b| b.iter().map(|&i| lengths[i]).max().unwrap() - b.iter().map(|&i| lengths[i]).min().unwrap())
            .sum::<usize>();
        assert!(spread / batches.len() <= 2, "mean length spread per batch {}", spread / batches.len());
    }
}
