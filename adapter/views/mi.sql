-- MI: the SQL step over the views sdtm_mi
SELECT
  element_at(split(KEY, '/'), 1) AS STUDYID,
  'MI' AS DOMAIN,
  element_at(split(KEY, '/'), 2) AS USUBJID,
  element_at(split(KEY, '/'), 3) AS MISEQ,
  element_at(split(SPECIMEN, '/'), 3) AS MIREFID,
  MITESTCD,
  MITEST,
  MIORRES,
  MIORRESU,
  coalesce(MISTRESC_TEXT, ANSWER, FREE_TEXT) AS MISTRESC,
  coalesce(MISTRESN_TEXT, CAST(MISTRESN AS STRING)) AS MISTRESN,
  MISTRESU,
  MISPEC,
  MISPCCND,
  MILOC,
  MILAT,
  MIMETHOD,
  MIDTC,
  CAST(VISITNUM AS STRING) AS VISITNUM,
  VISIT,
  EPOCH
FROM sdtm_mi
ORDER BY USUBJID, try_cast(MISEQ AS DECIMAL(38, 10)), MISEQ
