-- SE: the SQL step over the views sdtm_se
SELECT
  element_at(split(KEY, '/'), 1) AS STUDYID,
  'SE' AS DOMAIN,
  element_at(split(KEY, '/'), 2) AS USUBJID,
  SESEQ,
  ETCD,
  ELEMENT,
  SESTDTC,
  SEENDTC,
  TAETORD,
  EPOCH,
  SEUPDES
FROM sdtm_se
ORDER BY USUBJID, try_cast(SESEQ AS DECIMAL(38, 10)), SESEQ
