//! RFC 6962 / RFC 9162 Merkle trees as transparency logs build them: the hashes of leaves and
//! inner nodes, and the root an inclusion proof (audit path) leads to.

use sha2::{Digest, Sha256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// The hash of a leaf: SHA-256 of `0x00 || data`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(data);
    hasher.finalize().into()
}

/// The hash of an inner node: SHA-256 of `0x01 || left || right`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([1u8]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The root a proof leads to from leaf `index` (hash `leaf`) of a tree of `size` leaves, the
/// proof's hashes ordered from the leaf up (RFC 9162 §2.1.3.2). The proof splits where the paths
/// to `index` and to the last leaf part: below that, siblings sit left or right as the index's
/// bits say; above it, every sibling is on the left (the right border of the tree).
pub fn root_from_proof(index: u64, size: u64, leaf: Hash, proof: &[Hash]) -> Result<Hash, String> {
    if index >= size {
        return Err(format!(
            "the log index {index} is not inside a tree of {size} entries"
        ));
    }
    let inner = (u64::BITS - (index ^ (size - 1)).leading_zeros()) as usize;
    let border = (index >> inner).count_ones() as usize;
    if proof.len() != inner + border {
        return Err(format!(
            "the proof has {} hashes, but leaf {index} of a tree of {size} needs {}",
            proof.len(),
            inner + border
        ));
    }
    let mut hash = leaf;
    for (level, sibling) in proof[..inner].iter().enumerate() {
        hash = if (index >> level) & 1 == 1 {
            node_hash(sibling, &hash)
        } else {
            node_hash(&hash, sibling)
        };
    }
    for sibling in &proof[inner..] {
        hash = node_hash(sibling, &hash);
    }
    Ok(hash)
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// MTH(D[n]) of RFC 6962 §2.1, written from the definition.
    pub fn tree_root(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => Sha256::digest([]).into(),
            1 => leaves[0],
            n => {
                let k = split(n);
                node_hash(&tree_root(&leaves[..k]), &tree_root(&leaves[k..]))
            }
        }
    }

    /// PATH(m, D[n]) of RFC 6962 §2.1.1.
    pub fn path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        let n = leaves.len();
        if n <= 1 {
            return Vec::new();
        }
        let k = split(n);
        if m < k {
            let mut p = path(m, &leaves[..k]);
            p.push(tree_root(&leaves[k..]));
            p
        } else {
            let mut p = path(m - k, &leaves[k..]);
            p.push(tree_root(&leaves[..k]));
            p
        }
    }

    /// The largest power of two smaller than `n`.
    fn split(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("entry {i}").as_bytes()))
            .collect()
    }

    #[test]
    fn every_leaf_of_trees_of_every_size_up_to_33_proves_its_root() {
        for size in 1..=33 {
            let leaves = leaves(size);
            let root = tree_root(&leaves);
            for index in 0..size {
                let proof = path(index, &leaves);
                let got = root_from_proof(index as u64, size as u64, leaves[index], &proof);
                assert_eq!(got, Ok(root), "leaf {index} of {size}");
            }
        }
    }

    #[test]
    fn a_changed_hash_a_wrong_index_or_a_short_proof_leads_elsewhere() {
        let leaves = leaves(7);
        let root = tree_root(&leaves);
        let proof = path(5, &leaves);
        let mut tampered = proof.clone();
        tampered[1][0] ^= 1;
        assert_ne!(root_from_proof(5, 7, leaves[5], &tampered), Ok(root));
        assert_ne!(root_from_proof(4, 7, leaves[5], &proof), Ok(root));
        assert_ne!(root_from_proof(5, 7, leaves[4], &proof), Ok(root));
        assert_eq!(
            root_from_proof(5, 7, leaves[5], &proof[..2]),
            Err("the proof has 2 hashes, but leaf 5 of a tree of 7 needs 3".into())
        );
        assert_eq!(
            root_from_proof(7, 7, leaves[5], &proof),
            Err("the log index 7 is not inside a tree of 7 entries".into())
        );
    }

    #[test]
    fn leaf_and_node_hashes_carry_rfc_6962_prefixes() {
        // The empty leaf's hash, as RFC 6962 test vectors (and Certificate Transparency) give it.
        assert_eq!(
            hex::encode(leaf_hash(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        let (a, b) = (leaf_hash(b"a"), leaf_hash(b"b"));
        let mut joined = vec![1u8];
        joined.extend_from_slice(&a);
        joined.extend_from_slice(&b);
        assert_eq!(node_hash(&a, &b), <Hash>::from(Sha256::digest(&joined)));
    }
}
