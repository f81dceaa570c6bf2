namespace Coordination.Core;

/// <summary>A prepared txn on its way to the log (standalone) or to the ensemble (a leader's proposal). Its answer
/// is found at apply time by session id and xid.</summary>
public sealed record Proposal(TxnHeader Header, Txn Txn);
