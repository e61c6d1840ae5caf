DROP TRIGGER notification_counts_delete ON notifications;
DROP TRIGGER notification_counts_update ON notifications;
DROP TRIGGER notification_counts_insert ON notifications;
DROP FUNCTION notification_counts_apply();
DROP TABLE notification_counts;
