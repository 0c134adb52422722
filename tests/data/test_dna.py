"""DNA adapter: readers, tokenizers, reverse complement, batching and embedding on real records."""

import gzip
from pathlib import Path

import pandas as pd
import pytest
import torch
from Bio import SeqIO
from Bio.Seq import Seq
from Bio.SeqRecord import SeqRecord

from titans_sci.data.dna import SequenceRecord, read_sequences, reverse_complement
from titans_sci.data.tokens import (
    CLS_ID,
    PAD_ID,
    NucleotideTokenizer,
    pad_batch,
    reverse_complement_ids,
)
from titans_sci.layers.embedding import DNAEmbedding

# Real promoter sequences, copied verbatim (tests must not read ../shared, absent in CI).
# GUE prom_core_tata, test.csv.gz, data rows 1, 2 (label 0) and 4 (label 1); 70 bp each.
TATA_ROW1 = "GCAATAAAAGGCTTAGCCACATAGTGCATGCAGAGCTCTGACTTCTAGGGCAAAACATAAGCATGTACAC"
TATA_ROW2 = "ATTATATATGTCTATATTTTTTGCAGCCATTATGCAGATGTAGATCCTGAAAACCAGAACTTTTTACTTG"
TATA_ROW4 = "AGGTTAAATAGGGGTTGAGATATGATGCTCAGGAGAAGCGCTTTCTTTCGCGAGCACCCTGAACCAGACC"
# Genomic Benchmarks human_nontata_promoters, test.csv.gz, data row 8603 (label 1): 251 bp
# with one N.
NONTATA_WITH_N = (
    "GCCCCGCTGACTTGGGGGGCCGGAATCCCGTTGGACGGCCTCTGGGCATGCTCAGTAGCGGCGGCAGCGGCGGTGCGGGCGGCGG"
    "TGACGCGCGCGCGGCAGCTGAGGGGACTGGAGGACGGCGGGAGGGGGCGGGGGCGCAGGAGGTGGGNCCGCCGTCGCCGTCAGGG"
    "CCCCAGGGAGCGCGGGGCGCCGCTGCTGCTGTTCTTCGGCTCGGTTCTGTCTACCGGGCAGCGCCGGGGCCGGCGGCTGCG"
)
# Variants: soft-masked (lowercase) first 10 bases, and an IUPAC R at 1-based position 5.
TATA_SOFT = TATA_ROW4[:10].lower() + TATA_ROW4[10:]
TATA_R = TATA_ROW2[:4] + "R" + TATA_ROW2[5:]

REAL = {
    "tata_row1": (TATA_ROW1, 0),
    "tata_row4": (TATA_ROW4, 1),
    "nontata_8603": (NONTATA_WITH_N, 1),
    "tata_soft": (TATA_SOFT, 1),
    "tata_r": (TATA_R, 0),
}


def _open_write(path: Path):
    return gzip.open(path, "wt") if path.suffix == ".gz" else open(path, "w")


def _write_seqio(path: Path, fmt: str, items: dict[str, tuple[str, int]]) -> None:
    records = []
    for name, (seq, _) in items.items():
        rec = SeqRecord(Seq(seq), id=name, name=name, description="")
        rec.annotations["molecule_type"] = "DNA"
        if fmt == "fastq":
            rec.letter_annotations["phred_quality"] = [30] * len(seq)
        records.append(rec)
    with _open_write(path) as handle:
        SeqIO.write(records, handle, fmt)


def _write_table(path: Path, items: dict[str, tuple[str, int]], sep: str) -> None:
    frame = pd.DataFrame(
        {
            "name": list(items),
            "sequence": [seq for seq, _ in items.values()],
            "label": [label for _, label in items.values()],
        }
    )
    with _open_write(path) as handle:
        frame.to_csv(handle, sep=sep, index=False)


# ------------------------------------------------------------------------------ readers


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize(
    ("suffix", "fmt"), [(".fasta", "fasta"), (".fq", "fastq"), (".gbk", "genbank")]
)
def test_seqio_readers(tmp_path: Path, suffix: str, fmt: str, gz: bool) -> None:
    path = tmp_path / f"real{suffix}{'.gz' if gz else ''}"
    _write_seqio(path, fmt, REAL)
    records = read_sequences(path)
    # GenBank is case-insensitive (Biopython reads bases uppercase), so soft masking is lost.
    case = str.upper if fmt == "genbank" else str
    expected = [SequenceRecord(name, case(seq), None) for name, (seq, _) in REAL.items()]
    assert records == expected  # case (FASTA/FASTQ soft mask), N and R kept as written


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize(("suffix", "sep"), [(".csv", ","), (".tsv", "\t")])
def test_table_readers(tmp_path: Path, suffix: str, sep: str, gz: bool) -> None:
    path = tmp_path / f"real{suffix}{'.gz' if gz else ''}"
    _write_table(path, REAL, sep)
    records = read_sequences(path)
    expected = [
        SequenceRecord(f"row{i}", seq, label) for i, (seq, label) in enumerate(REAL.values(), 1)
    ]
    assert records == expected


def test_table_without_label_column(tmp_path: Path) -> None:
    path = tmp_path / "nolabel.csv"
    path.write_text(f"sequence\n{TATA_ROW1}\n{TATA_ROW2}\n")
    assert [r.label for r in read_sequences(path)] == [None, None]


def test_invalid_character_names_file_record_position(tmp_path: Path) -> None:
    bad = TATA_ROW1[:11] + "X" + TATA_ROW1[12:]
    path = tmp_path / "bad.fa"
    _write_seqio(path, "fasta", {"tata_row1": (TATA_ROW1, 0), "broken": (bad, 0)})
    with pytest.raises(ValueError) as info:
        read_sequences(path)
    message = str(info.value)
    assert "bad.fa" in message and "'broken'" in message
    assert "position 12" in message and "'X'" in message


def test_invalid_character_in_csv_names_row(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(f"sequence,label\n{TATA_ROW1},0\n{TATA_ROW2[:3]}-{TATA_ROW2[4:]},0\n")
    with pytest.raises(ValueError, match=r"bad\.csv.*'row2'.*'-' at position 4"):
        read_sequences(path)


def test_empty_record_raises(tmp_path: Path) -> None:
    path = tmp_path / "empty.fa"
    path.write_text(f">empty_one\n\n>tata_row1\n{TATA_ROW1}\n")
    with pytest.raises(ValueError, match=r"empty\.fa.*'empty_one'.*empty"):
        read_sequences(path)


def test_csv_without_sequence_column_raises(tmp_path: Path) -> None:
    path = tmp_path / "noseq.csv"
    path.write_text(f"seq,label\n{TATA_ROW1},0\n")
    with pytest.raises(ValueError, match=r"noseq\.csv.*'sequence'"):
        read_sequences(path)


def test_csv_non_integer_label_raises(tmp_path: Path) -> None:
    path = tmp_path / "badlabel.tsv"
    path.write_text(f"sequence\tlabel\n{TATA_ROW1}\t0\n{TATA_ROW2}\tyes\n")
    with pytest.raises(ValueError, match=r"badlabel\.tsv.*'row2'.*'yes'"):
        read_sequences(path)


def test_unknown_suffix_raises(tmp_path: Path) -> None:
    path = tmp_path / "reads.bam"
    path.write_text("")
    with pytest.raises(ValueError, match=r"reads\.bam.*'\.bam'"):
        read_sequences(path)


# ------------------------------------------------------------------------------ tokenizers


def test_nucleotide_tokenizer_ids_and_round_trip() -> None:
    tok = NucleotideTokenizer()
    assert (tok.vocab_size, tok.pad_id) == (10, PAD_ID)
    assert tok.encode("ACGTN") == [5, 6, 7, 8, 9]
    assert tok.encode("acgtn") == [5, 6, 7, 8, 9]  # soft-masked bases: uppercase ids
    assert tok.encode("U") == [8]
    assert tok.encode("RYKMSWBDHV") == [9] * 10  # ambiguity codes -> N
    for seq in (TATA_ROW1, TATA_ROW4, NONTATA_WITH_N):
        assert tok.decode(tok.encode(seq)) == seq
    ids = tok.encode(TATA_R)
    assert ids[4] == 9 and tok.decode(ids) == TATA_R[:4] + "N" + TATA_R[5:]
    assert tok.decode([CLS_ID, *tok.encode("ACG"), PAD_ID]) == "ACG"
    assert tok.decode(torch.tensor(tok.encode(TATA_ROW1))) == TATA_ROW1


def test_nucleotide_tokenizer_soft_mask() -> None:
    tok = NucleotideTokenizer(keep_soft_mask=True)
    ids, soft = tok.encode_with_mask(TATA_SOFT)
    assert ids == tok.encode(TATA_ROW4)
    assert soft == [True] * 10 + [False] * (len(TATA_SOFT) - 10)
    assert tok.decode(ids, soft) == TATA_SOFT
    with pytest.raises(ValueError, match="keep_soft_mask"):
        NucleotideTokenizer().encode_with_mask(TATA_SOFT)


def test_nucleotide_tokenizer_rejects_invalid_character() -> None:
    with pytest.raises(ValueError, match="'Z' at position 3"):
        NucleotideTokenizer().encode("ACZT")


# ------------------------------------------------------------------------------ reverse complement


def test_reverse_complement_strings() -> None:
    assert reverse_complement("acgTRN") == "NYAcgt"
    for seq in (TATA_ROW1, NONTATA_WITH_N, TATA_SOFT, TATA_R):
        assert reverse_complement(reverse_complement(seq)) == seq


def _padded(seqs: list[str], side: str) -> tuple[torch.Tensor, torch.Tensor]:
    tok = NucleotideTokenizer()
    return pad_batch([tok.encode(s) for s in seqs], tok.pad_id, side=side)


@pytest.mark.parametrize("side", ["right", "left"])
def test_reverse_complement_ids_matches_strings_and_is_involution(side: str) -> None:
    tok = NucleotideTokenizer()
    seqs = [TATA_ROW1, NONTATA_WITH_N, TATA_ROW4[:33]]
    ids, mask = _padded(seqs, side)
    rc_ids = reverse_complement_ids(ids, tok, mask)
    expected, _ = _padded([reverse_complement(s) for s in seqs], side)
    assert torch.equal(rc_ids, expected)
    assert torch.equal(rc_ids == PAD_ID, ~mask)  # padding stays where it was
    assert torch.equal(reverse_complement_ids(rc_ids, tok, mask), ids)


def test_reverse_complement_ids_without_mask_and_specials() -> None:
    tok = NucleotideTokenizer()
    ids = torch.tensor([[CLS_ID, *tok.encode("AACGN")]])
    assert reverse_complement_ids(ids, tok).tolist() == [[*tok.encode("NCGTT"), CLS_ID]]


# ------------------------------------------------------------------------------ batching


@pytest.mark.parametrize("side", ["right", "left"])
def test_pad_batch_shapes_and_masks(side: str) -> None:
    ids, mask = pad_batch([[5, 6, 7], [8], [9, 9]], pad_id=0, side=side)
    assert ids.shape == mask.shape == (3, 3)
    assert ids.dtype == torch.long and mask.dtype == torch.bool
    assert mask.sum(dim=1).tolist() == [3, 1, 2]
    assert torch.equal(ids == 0, ~mask)
    if side == "right":
        assert ids.tolist() == [[5, 6, 7], [8, 0, 0], [9, 9, 0]]
    else:
        assert ids.tolist() == [[5, 6, 7], [0, 0, 8], [0, 9, 9]]


def test_dna_embedding_shapes_and_soft_mask_channel() -> None:
    tok = NucleotideTokenizer(keep_soft_mask=True)
    encoded = [tok.encode_with_mask(s) for s in (TATA_SOFT, TATA_ROW4[:50])]
    ids, mask = pad_batch([i for i, _ in encoded], tok.pad_id)
    soft, _ = pad_batch([[int(b) for b in m] for _, m in encoded], 0)
    soft = soft.bool()

    emb = DNAEmbedding(tok.vocab_size, dim=16, pad_id=tok.pad_id, soft_mask_channel=True)
    plain = emb(ids)
    masked = emb(ids, soft)
    assert plain.shape == masked.shape == (2, 70, 16)
    assert torch.equal(emb(ids, torch.zeros_like(soft)), plain)
    changed = (masked != plain).any(dim=-1)
    assert torch.equal(changed, soft)  # only soft-masked positions change
    assert torch.all(plain[~mask] == 0)  # padding embeds to zero

    no_channel = DNAEmbedding(tok.vocab_size, dim=16)
    assert no_channel(ids).shape == (2, 70, 16)
    with pytest.raises(ValueError, match="soft_mask_channel"):
        no_channel(ids, soft)
