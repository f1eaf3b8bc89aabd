// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/**
 * @title CollectiveLearning
 * @notice Drives the collective-learning protocol: each epoch one learner proposes new model weights
 * (by digest and content id), the learners vote, and the proposal becomes the current model if
 * `approvals * 10000 >= voters * voteThresholdBps`.
 *
 * @dev Only the current epoch is kept in storage; the full history (every proposal, vote and
 * outcome) is in the events, which is what agents and explorers read. No function loops over the
 * learners outside the constructor, so the gas of each call does not depend on their number.
 * Two model buffers alternate: a proposal is written into the buffer that is not current and an
 * accept only flips which buffer is current, so accepting copies nothing.
 */
contract CollectiveLearning {
    // ─────────────────────────────────────────────────────────────── errors and events

    /// @notice Where an epoch is in its life. Derived from stored facts and the block time.
    enum Phase {
        Proposing, // waiting for the proposer, before the proposal deadline
        Voting, // a proposal is recorded, before the voting deadline
        ProposalExpired, // no proposal before the deadline: anyone may close (skip)
        VotingExpired // voting deadline passed: anyone may close with the votes present
    }

    /// @notice The learner list is empty, or too short for the chosen voting rule.
    error InvalidLearnerCount(uint256 count, uint256 minimum);
    /// @notice A learner address is the zero address.
    error ZeroLearner(uint256 index);
    /// @notice A learner address occurs twice.
    error DuplicateLearner(address learner);
    /// @notice The vote threshold is not in 1..10000 basis points.
    error InvalidThreshold(uint256 thresholdBps);
    /// @notice A timeout is zero or does not fit the packed deadline.
    error InvalidTimeout(uint256 timeout);
    /// @notice A model must have a non-zero digest and a non-empty content id.
    error EmptyModel();
    /// @notice A content id longer than MAX_CID_LENGTH bytes (a CIDv0 is 46, a base32 CIDv1 59).
    error CidTooLong(uint256 length, uint256 maximum);
    /**
     * @notice A content id holds a byte outside [0-9A-Za-z] (see CID_ALPHABET).
     * @param position zero-based offset of the first such byte in the content id.
     * @param character that byte.
     */
    error InvalidCidCharacter(uint256 position, bytes1 character);
    /// @notice The call names an epoch other than the current one.
    error WrongEpoch(uint256 given, uint256 current);
    /// @notice The epoch is not in the phase this call needs.
    error UnexpectedPhase(uint256 epoch, Phase current, Phase expected);
    /// @notice Only the epoch's proposer may propose.
    error NotProposer(uint256 epoch, address caller, address proposer);
    /// @notice Only a learner may vote.
    error NotLearner(address caller);
    /// @notice A learner votes at most once per epoch.
    error AlreadyVoted(uint256 epoch, address learner);
    /// @notice Under the colearn variant the proposer does not vote.
    error ProposerCannotVote(uint256 epoch, address proposer);
    /// @notice The proposal deadline has passed; the epoch can only be closed as skipped.
    error ProposalClosed(uint256 epoch, uint256 deadline);
    /// @notice The voting deadline has passed; the epoch can only be closed.
    error VotingClosed(uint256 epoch, uint256 deadline);
    /// @notice The epoch's deadline has not passed and its vote set is not complete.
    error TooEarlyToClose(uint256 epoch, uint256 deadline);

    /// @notice The consortium and its rules, fixed at deployment.
    event ConsortiumFormed(
        address[] learners, uint256 voteThresholdBps, uint256 proposalTimeout, uint256 votingTimeout, bool proposerVotes
    );
    /// @notice The deployment's initial model, which every learner starts from.
    event ModelInitialized(bytes32 digest, string cid);
    /// @notice Epoch `epoch` started; `proposer` may propose until `proposalDeadline` (unix seconds).
    event EpochStarted(uint256 indexed epoch, address indexed proposer, uint256 proposalDeadline);
    /// @notice The proposer recorded new weights; voting is open until `votingDeadline`.
    event WeightsProposed(
        uint256 indexed epoch, address indexed proposer, bytes32 digest, string cid, uint256 votingDeadline
    );
    /// @notice A learner voted; `score` is its vote score as a fixed-point integer (1e18 = 1.0).
    event VoteCast(uint256 indexed epoch, address indexed voter, bool approve, int256 score);
    /// @notice The proposal met the threshold and is now the current model.
    event ProposalAccepted(uint256 indexed epoch, bytes32 digest, string cid, uint256 approvals, uint256 rejections);
    /// @notice The proposal missed the threshold; the current model is unchanged.
    event ProposalRejected(uint256 indexed epoch, bytes32 digest, string cid, uint256 approvals, uint256 rejections);
    /// @notice The proposer sent nothing before the proposal deadline; the current model is unchanged.
    event EpochSkipped(uint256 indexed epoch, address indexed proposer);

    // ─────────────────────────────────────────────────────────────── state

    /// @dev The current epoch's facts, packed in one slot.
    struct Round {
        uint64 epoch;
        uint40 deadline; // proposal deadline while Proposing, voting deadline once proposed
        bool proposed;
        uint16 approvals;
        uint16 rejections;
        uint8 modelBuffer; // index into _models of the current model
        uint64 modelSince; // first epoch in which the current model was current
    }

    struct Model {
        bytes32 digest;
        string cid;
    }

    /// @notice Longest content id accepted, in bytes: it bounds what closing an epoch reads and emits.
    uint256 public constant MAX_CID_LENGTH = 100;
    /**
     * @notice The bytes a content id may hold, as a bitmap over ASCII: bit `b` is set iff byte `b` is
     * 0-9, A-Z or a-z.
     * @dev Every agent decodes, prints and logs the content ids the contract emits, so the contract
     * records only plain text: no control byte, space, punctuation or non-ASCII byte (which may not even
     * be valid UTF-8). Alphanumeric covers what Kubo emits by default, CIDv0 (base58btc `Qm...`) and
     * CIDv1 (base32 `b...`), and the other alphanumeric multibase encodings (base58btc `z...`, base36
     * `k...`, base16 `f...`). base64 and base64url CIDs (`m...`, `u...`, with `+/` or `-_`) are refused on
     * purpose: `/` and `-` are path and option characters, and no default tool emits those encodings.
     * A byte >= 128 shifts the 128-bit map to zero, so one shift and one AND check any byte.
     */
    uint256 public constant CID_ALPHABET = 0x07fffffe07fffffe03ff000000000000;

    /// @notice Fraction of voters that must approve, in basis points (5000 = one half).
    uint256 public immutable voteThresholdBps;
    /// @notice Seconds the proposer has, from the start of an epoch.
    uint256 public immutable proposalTimeout;
    /// @notice Seconds the voters have, from the proposal.
    uint256 public immutable votingTimeout;
    /// @notice True under the seed's rule (everyone votes); false under colearn 0.2.8 (the proposer does not).
    bool public immutable proposerVotes;

    uint256 private immutable _learnerCount;
    address[] private _learners;
    /// @dev learner => (index + 1) in the low 32 bits, (last voted epoch + 1) in the next 64 bits.
    mapping(address learner => uint256 packed) private _members;
    Round private _round;
    Model[2] private _models;

    // ─────────────────────────────────────────────────────────────── constructor

    /**
     * @param learners_ the fixed, ordered learner list (no duplicates, no zero address).
     * @param voteThresholdBps_ approval fraction in basis points, 1..10000.
     * @param proposalTimeout_ seconds the proposer has before anyone may skip the epoch.
     * @param votingTimeout_ seconds the voters have before anyone may close the epoch.
     * @param proposerVotes_ true for the seed's rule, false for the colearn variant.
     * @param initialDigest digest of the encoded initial weights.
     * @param initialCid content id of the encoded initial weights.
     */
    constructor(
        address[] memory learners_,
        uint256 voteThresholdBps_,
        uint256 proposalTimeout_,
        uint256 votingTimeout_,
        bool proposerVotes_,
        bytes32 initialDigest,
        string memory initialCid
    ) {
        uint256 n = learners_.length;
        uint256 minimum = proposerVotes_ ? 1 : 2;
        if (n < minimum || n > type(uint16).max) revert InvalidLearnerCount(n, minimum);
        if (voteThresholdBps_ == 0 || voteThresholdBps_ > 10_000) revert InvalidThreshold(voteThresholdBps_);
        if (proposalTimeout_ == 0 || proposalTimeout_ > type(uint32).max) revert InvalidTimeout(proposalTimeout_);
        if (votingTimeout_ == 0 || votingTimeout_ > type(uint32).max) revert InvalidTimeout(votingTimeout_);
        _checkModel(initialDigest, bytes(initialCid));
        for (uint256 i = 0; i < n; ++i) {
            address learner = learners_[i];
            if (learner == address(0)) revert ZeroLearner(i);
            if (_members[learner] != 0) revert DuplicateLearner(learner);
            _members[learner] = i + 1;
        }
        _learners = learners_;
        _learnerCount = n;
        voteThresholdBps = voteThresholdBps_;
        proposalTimeout = proposalTimeout_;
        votingTimeout = votingTimeout_;
        proposerVotes = proposerVotes_;

        // Both buffers start as the initial model, so a proposal always overwrites non-zero slots.
        _models[0] = Model(initialDigest, initialCid);
        _models[1] = Model(initialDigest, initialCid);
        emit ConsortiumFormed(learners_, voteThresholdBps_, proposalTimeout_, votingTimeout_, proposerVotes_);
        emit ModelInitialized(initialDigest, initialCid);
        _startEpoch(0, 0, 0);
    }

    // ─────────────────────────────────────────────────────────────── views

    /// @notice The ordered learner list.
    function learners() external view returns (address[] memory) {
        return _learners;
    }

    /// @notice Number of learners.
    function learnerCount() external view returns (uint256) {
        return _learnerCount;
    }

    /// @notice Whether `account` is a learner.
    function isLearner(address account) public view returns (bool) {
        return _members[account] & type(uint32).max != 0;
    }

    /// @notice Position of `learner` in the learner list; reverts NotLearner for anyone else.
    function learnerIndex(address learner) external view returns (uint256) {
        uint256 packed = _members[learner];
        if (packed & type(uint32).max == 0) revert NotLearner(learner);
        return (packed & type(uint32).max) - 1;
    }

    /// @notice The learner that proposes in `epoch` (the seed's rule `learners[epoch % n]`).
    function proposerOf(uint256 epoch) public view returns (address) {
        return _learners[epoch % _learnerCount];
    }

    /// @notice Number of voters each epoch: n under the seed's rule, n - 1 under the colearn variant.
    function voterCount() public view returns (uint256) {
        return proposerVotes ? _learnerCount : _learnerCount - 1;
    }

    /// @notice Approvals needed for acceptance: the least `a` with `a * 10000 >= voters * threshold`.
    function approvalsNeeded() external view returns (uint256) {
        return (voterCount() * voteThresholdBps + 9_999) / 10_000;
    }

    /// @notice The current epoch number (epoch 0 starts at deployment).
    function currentEpoch() external view returns (uint256) {
        return _round.epoch;
    }

    /// @notice The current epoch's phase at the current block time.
    function phase() external view returns (Phase) {
        return _phase(_round);
    }

    /**
     * @notice Everything about the current epoch in one call.
     * @return epoch the current epoch.
     * @return currentPhase its phase now.
     * @return proposer its proposer.
     * @return deadline the proposal deadline, or the voting deadline once proposed.
     * @return approvals approvals so far.
     * @return rejections rejections so far.
     * @return digest the proposed digest (zero before a proposal).
     * @return cid the proposed content id (empty before a proposal).
     */
    function epochState()
        external
        view
        returns (
            uint256 epoch,
            Phase currentPhase,
            address proposer,
            uint256 deadline,
            uint256 approvals,
            uint256 rejections,
            bytes32 digest,
            string memory cid
        )
    {
        Round memory r = _round;
        epoch = r.epoch;
        currentPhase = _phase(r);
        proposer = proposerOf(r.epoch);
        deadline = r.deadline;
        approvals = r.approvals;
        rejections = r.rejections;
        if (r.proposed) {
            Model storage pending = _models[1 - r.modelBuffer];
            (digest, cid) = (pending.digest, pending.cid);
        }
    }

    /// @notice Whether `learner` has voted in the current epoch.
    function hasVoted(address learner) external view returns (bool) {
        return _members[learner] >> 32 == uint256(_round.epoch) + 1;
    }

    /**
     * @notice The current model: the last accepted proposal, or the initial model.
     * @return digest digest of its encoded weights.
     * @return cid its content id.
     * @return sinceEpoch the first epoch in which it was current (0 for the initial model).
     */
    function currentModel() external view returns (bytes32 digest, string memory cid, uint256 sinceEpoch) {
        Round memory r = _round;
        Model storage model = _models[r.modelBuffer];
        return (model.digest, model.cid, r.modelSince);
    }

    // ─────────────────────────────────────────────────────────────── mutators

    /**
     * @notice Record the proposal of `epoch`. Only its proposer, only before the proposal deadline.
     * @param epoch the current epoch (guards against acting on a stale view).
     * @param digest digest of the encoded weights (sha256 of the blob).
     * @param cid content id of the blob in the weight store.
     */
    function propose(uint256 epoch, bytes32 digest, string calldata cid) external {
        Round memory r = _round;
        _checkPhase(r, epoch, Phase.Proposing);
        address proposer = proposerOf(epoch);
        if (msg.sender != proposer) revert NotProposer(epoch, msg.sender, proposer);
        _checkModel(digest, bytes(cid));

        Model storage pending = _models[1 - r.modelBuffer];
        pending.digest = digest;
        pending.cid = cid;
        uint40 votingDeadline = uint40(block.timestamp + votingTimeout);
        r.proposed = true;
        r.deadline = votingDeadline;
        _round = r;
        emit WeightsProposed(epoch, msg.sender, digest, cid, votingDeadline);
    }

    /**
     * @notice Vote on the proposal of `epoch`. Each learner once; the vote that completes the set closes
     * the epoch at once.
     * @param epoch the current epoch.
     * @param approve whether the voter approves the proposed weights.
     * @param score the voter's vote score, fixed point with 18 decimals (for the record only).
     */
    function vote(uint256 epoch, bool approve, int256 score) external {
        Round memory r = _round;
        _checkPhase(r, epoch, Phase.Voting);
        uint256 packed = _members[msg.sender];
        if (packed & type(uint32).max == 0) revert NotLearner(msg.sender);
        if (packed >> 32 == epoch + 1) revert AlreadyVoted(epoch, msg.sender);
        if (!proposerVotes && msg.sender == proposerOf(epoch)) revert ProposerCannotVote(epoch, msg.sender);

        _members[msg.sender] = (packed & type(uint32).max) | ((epoch + 1) << 32);
        if (approve) ++r.approvals;
        else ++r.rejections;
        emit VoteCast(epoch, msg.sender, approve, score);

        if (r.approvals + r.rejections == voterCount()) {
            _decide(r);
        } else {
            _round = r;
        }
    }

    /**
     * @notice Close `epoch` once its deadline has passed: skipped if nothing was proposed, otherwise decided
     * on the votes present (a missing vote does not approve). Anyone may call it.
     * @param epoch the current epoch.
     */
    function close(uint256 epoch) external {
        Round memory r = _round;
        if (epoch != r.epoch) revert WrongEpoch(epoch, r.epoch);
        Phase current = _phase(r);
        if (current == Phase.ProposalExpired) {
            emit EpochSkipped(epoch, proposerOf(epoch));
            _startEpoch(epoch + 1, r.modelBuffer, r.modelSince);
        } else if (current == Phase.VotingExpired) {
            _decide(r);
        } else {
            revert TooEarlyToClose(epoch, r.deadline);
        }
    }

    // ─────────────────────────────────────────────────────────────── internals

    function _phase(Round memory r) private view returns (Phase) {
        bool expired = block.timestamp >= r.deadline;
        if (r.proposed) return expired ? Phase.VotingExpired : Phase.Voting;
        return expired ? Phase.ProposalExpired : Phase.Proposing;
    }

    /// @dev The one place that checks a mutator's epoch and phase, with the most specific error.
    function _checkPhase(Round memory r, uint256 epoch, Phase expected) private view {
        if (epoch != r.epoch) revert WrongEpoch(epoch, r.epoch);
        Phase current = _phase(r);
        if (current == expected) return;
        if (current == Phase.ProposalExpired && expected == Phase.Proposing) revert ProposalClosed(epoch, r.deadline);
        if (current == Phase.VotingExpired && expected == Phase.Voting) revert VotingClosed(epoch, r.deadline);
        revert UnexpectedPhase(epoch, current, expected);
    }

    /// @dev The one place that checks a model before it is recorded: a digest, and a content id of 1 to
    /// MAX_CID_LENGTH bytes, each in CID_ALPHABET.
    function _checkModel(bytes32 digest, bytes memory cid) private pure {
        uint256 length = cid.length;
        if (digest == bytes32(0) || length == 0) revert EmptyModel();
        if (length > MAX_CID_LENGTH) revert CidTooLong(length, MAX_CID_LENGTH);
        uint256 bad; // 1 + the position of the first byte outside CID_ALPHABET, 0 if there is none
        // One load, shift and AND per byte: about 85 gas a byte with the copy from calldata (bench/gas.py),
        // where a Solidity loop over cid[i] cost 160.
        assembly ("memory-safe") {
            let data := add(cid, 0x20)
            let end := add(data, length)
            for { let p := data } lt(p, end) { p := add(p, 1) } {
                if iszero(and(shr(byte(0, mload(p)), CID_ALPHABET), 1)) {
                    bad := add(sub(p, data), 1)
                    break
                }
            }
        }
        if (bad != 0) revert InvalidCidCharacter(bad - 1, cid[bad - 1]);
    }

    /// @dev Decide the proposal of round `r` and start the next epoch.
    function _decide(Round memory r) private {
        uint256 epoch = r.epoch;
        uint8 pendingBuffer = 1 - r.modelBuffer;
        Model storage pending = _models[pendingBuffer];
        if (uint256(r.approvals) * 10_000 >= voterCount() * voteThresholdBps) {
            emit ProposalAccepted(epoch, pending.digest, pending.cid, r.approvals, r.rejections);
            _startEpoch(epoch + 1, pendingBuffer, uint64(epoch + 1));
        } else {
            emit ProposalRejected(epoch, pending.digest, pending.cid, r.approvals, r.rejections);
            _startEpoch(epoch + 1, r.modelBuffer, r.modelSince);
        }
    }

    function _startEpoch(uint256 epoch, uint8 modelBuffer, uint64 modelSince) private {
        uint40 deadline = uint40(block.timestamp + proposalTimeout);
        _round = Round({
            epoch: uint64(epoch),
            deadline: deadline,
            proposed: false,
            approvals: 0,
            rejections: 0,
            modelBuffer: modelBuffer,
            modelSince: modelSince
        });
        emit EpochStarted(epoch, proposerOf(epoch), deadline);
    }
}
